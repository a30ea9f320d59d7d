"""Registered claims: what a claim is (:class:`Claim`), which claims a config is judged on
(its ``claims:``, else its published artefact's), and judging them on a report's rows.

A config declares claims by name
(``claims: [never_ends_at_k_cluster, {claim: ends_at_k_cluster_more_often, algorithm: gd, than: em}]``).
A claim is one function ``(rows, config, **params) -> Verdict`` with typed parameter defaults; a
plug-in registers more with :func:`emrun.plugins.register_claim`. The built-in claims on trial
rows and the published artefacts are in :mod:`emrun.report.row_claims`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from emrun.criteria import EXTENSION, Change, ClaimSpec, Declared, Source
from emrun.criteria import uai2019 as uai
from emrun.report.companions import call_judge, declared_rows
from emrun.report.verdicts import Verdict

UNDECLARED = Source(EXTENSION, note="a claim registered by a plug-in that names no source")


@dataclass(frozen=True)
class Claim:
    """A registered claim: ``judge(rows, config, **params) -> Verdict``; ``params`` maps each
    parameter to its default (None: the config must give it); ``kinds`` the experiment kinds whose
    rows it judges. ``spec`` declares its wording, criterion, source and criterion version; a
    claim registered without one is recorded under its name, with ``version`` (bump it when the
    decision rule changes, and say why in ``changes``: :class:`emrun.criteria.Change` entries),
    ``identity`` (the params that say which claim it is: the others are criterion params) and
    ``source``. ``derive`` adds the params its wording needs beyond those a config gives."""

    name: str
    judge: Callable[..., Verdict]
    params: dict = field(default_factory=dict)
    kinds: tuple[str, ...] = ("grid",)
    description: str = ""
    spec: ClaimSpec | None = None
    version: int = 1
    identity: tuple[str, ...] = ()
    source: Source | None = None
    criterion: str = ""
    changes: tuple[Change, ...] = ()
    derive: Callable[[dict], dict] | None = None  # params -> params as its spec words them (a trend's other factor)

    def declared_spec(self) -> ClaimSpec:
        """Its spec; for a claim registered without one, a spec made of its name and fields (its
        wording and criterion then come from its verdict)."""
        if self.spec is not None:
            return self.spec
        return ClaimSpec(self.name, self.name, self.criterion or self.description or "stated by the claim's verdict",
                         self.source or UNDECLARED, self.version, tuple(self.changes), identity=self.identity)

    def source_for(self, params: dict, values: dict) -> Source:
        """Its source in a config: the paper's claim in the paper's setting, else an extension."""
        spec = self.declared_spec()
        return uai.kcluster_source(self.name, params, values, spec.source)


def declared_claims(config: dict) -> list[dict]:
    """The claims a config is judged on: its own ``claims``, else its artefact's."""
    from emrun.registry import ARTEFACTS as artefacts

    if "claims" in config:
        return list(config["claims"])
    artefact = config.get("compare_to")
    return list(artefacts.get(artefact).claims) if artefact else []


def baseline_of(config: dict) -> str | None:
    """The algorithm the others are compared with: the config's ``baseline``, else its artefact's."""
    from emrun.registry import ARTEFACTS as artefacts

    if "baseline" in config:
        return config["baseline"]
    artefact = config.get("compare_to")
    chosen = artefacts.get(artefact).baseline if artefact else None
    return chosen if chosen in config["grid"]["algorithm"] else None


def _spec_params(claim: Claim, spec: dict) -> dict:
    """The params a declared claim is judged with: the config's, with the claim's defaults."""
    return {**{k: v for k, v in claim.params.items() if v is not None}, **{k: v for k, v in spec.items() if k != "claim"}}


def declared(config: dict) -> list[Declared]:
    """The registered claims a config is judged on, as the criterion record keeps them."""
    from emrun.registry import CLAIMS

    out = []
    for spec in declared_claims(config):
        claim = CLAIMS.get(spec["claim"])
        params = _spec_params(claim, spec)
        out.append(Declared(claim.declared_spec(), _with_derived(claim, params), claim.source_for(params, config),
                            _kept_copy(claim.name, params, config)))
    return out


def _kept_copy(name: str, params: dict, config: dict) -> dict | None:
    """The claim plug-in file that registers claim ``name`` (its label and hash, as the config's
    ``claim_plugins`` records it), with the claim's name and params: what judges it again later."""
    from emrun.registry import CLAIMS

    owner = CLAIMS.owner(name)
    for record in config.get("claim_plugins", []):
        if "file" in record and owner == f"{record['file']}@{record['sha256'][:12]}":
            return {"file": record["file"], "sha256": record["sha256"], "claim": name, "params": params}
    return None


def _with_derived(claim: Claim, params: dict) -> dict:
    """Params as the claim's spec words them (:attr:`Claim.derive`)."""
    return params if claim.derive is None else claim.derive(params)


Companions = Callable[[], dict]  # () -> {label: rows, or why there are none}: a config's declared companions


def judge(rows: pd.DataFrame, config: dict, claims: list[dict], recorded: dict | None = None,
          companions: Companions | None = None) -> list[Verdict]:
    """The verdict of each declared claim on the rows (of the folder whose ``config`` is given: the
    source depends on its setting). With ``recorded`` (that folder's criterion record), a claim
    whose recorded params differ from the ones given is judged under the recorded params too (the
    verdict's alternatives). ``companions`` gives the declared companions' rows to the claims
    that ask for them (:func:`emrun.report.companions.declared_rows`)."""
    from emrun.registry import CLAIMS

    verdicts = []
    for spec in claims:
        claim = CLAIMS.get(spec["claim"])
        params = _spec_params(claim, spec)
        verdict = judged(claim, rows, config, params, companions)
        first = (recorded or {}).get("recorded", {}).get(verdict.key) if recorded else None
        if first is not None and first.get("params") != verdict.params and first.get("version") == verdict.version:
            identity = {k: v for k, v in params.items() if k in claim.declared_spec().identity}
            earlier = judged(claim, rows, config, {**params, **first["params"], **identity}, companions)
            verdict = replace(verdict, alternatives=(*verdict.alternatives, earlier))
        verdicts.append(verdict)
    return verdicts


def judge_declared(ctx) -> list[Verdict]:
    """The config's declared claims judged on a report's own rows, with its declared companions."""

    return judge(ctx.rows, ctx.config, declared_claims(ctx.config), ctx.record, lambda: declared_rows(ctx))


def judged(claim: Claim, rows: pd.DataFrame, config: dict, params: dict, companions: Companions | None = None) -> Verdict:
    """One claim judged, with its record key, criterion params, version and source filled in for a
    plug-in claim registered without a spec."""
    derived = _with_derived(claim, params)
    spec = claim.declared_spec()
    try:
        verdict = call_judge(claim, rows, config, params, companions, derived)
    except Exception as error:  # a plug-in claim that breaks is reported, not fatal to the report
        return spec.untestable(f"the claim raised {type(error).__name__}: {error}.", **derived)
    from emrun.criteria import _plain

    return replace(verdict, id=verdict.id or spec.id, key=verdict.key or spec.key(derived),
                   params=verdict.params if verdict.params is not None else _plain(spec.criterion_params(derived)),
                   version=verdict.version or spec.version, finding=verdict.finding or spec.finding(derived),
                   source=claim.source_for(params, config).as_dict())
