"""The Dask executor on a LocalCluster (127.0.0.1): the same rows as the local pool, and a worker
killed mid-sweep loses and duplicates nothing."""

import pandas as pd
import pytest

from emrun.results import load_results
from emrun.store import TIMING_COLUMNS
from tests.conftest import emrun

pytest.importorskip("distributed", reason="the Dask executor needs 'pip install emrun[dask]'")


def rows_of(folder):
    return load_results(folder).drop(columns=list(TIMING_COLUMNS))


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "3"])
def test_dask_rows_equal_the_local_pool(tiny_config, workers):
    cwd = tiny_config.parent
    emrun("sweep", str(tiny_config), "--quiet", "--results", "local", cwd=cwd)
    on_dask = emrun("sweep", str(tiny_config), "--quiet", "--results", "dask", "--executor", "dask",
                    "--workers", workers, cwd=cwd, timeout=180)
    assert "8 of 8 batches stored" in on_dask.stdout
    pd.testing.assert_frame_equal(rows_of(cwd / "local" / "tiny"), rows_of(cwd / "dask" / "tiny"))
    stored = load_results(cwd / "dask" / "tiny")
    assert stored["worker"].str.contains("numpy").all()  # each row says where it ran


@pytest.mark.slow
def test_a_worker_killed_during_the_sweep_loses_and_duplicates_nothing(tiny_config):
    cwd = tiny_config.parent
    marker = cwd / "killed-once"
    batch = "m3-D3-gd-step0.05-uniform-truth0"
    emrun("sweep", str(tiny_config), "--quiet", "--results", "local", cwd=cwd)
    hit = emrun("sweep", str(tiny_config), "--quiet", "--results", "dask", "--executor", "dask", "--workers", "2",
                cwd=cwd, env={"EMRUN_TEST_KILL_WORKER": f"{batch}:{marker}"}, timeout=180)
    assert marker.exists()  # the worker that started this batch died
    assert "8 of 8 batches stored" in hit.stdout and "Workers lost during the sweep" in hit.stderr
    dask_rows = rows_of(cwd / "dask" / "tiny")
    assert "distributed" not in hit.stderr  # Dask's own log lines stay out of the user's terminal
    assert not dask_rows.duplicated(["batch_id", "run_index"]).any()
    pd.testing.assert_frame_equal(rows_of(cwd / "local" / "tiny"), dask_rows)


@pytest.mark.slow
def test_every_lost_worker_is_counted(tiny_config):
    cwd = tiny_config.parent
    kills = ";".join(f"m{m}-D3-gd-step0.05-uniform-truth0:{cwd / f'killed-{m}'}" for m in (2, 3))
    hit = emrun("sweep", str(tiny_config), "--quiet", "--executor", "dask", "--workers", "2", cwd=cwd,
                env={"EMRUN_TEST_KILL_WORKER": kills}, timeout=180)
    assert (cwd / "killed-2").exists() and (cwd / "killed-3").exists()
    lost = hit.stderr.split("Workers lost during the sweep: ")[1].split(";")[0].split(", ")
    assert len(lost) == 2 and all(name.startswith("tcp://127.0.0.1:") for name in lost), hit.stderr
    assert "8 of 8 batches stored" in hit.stdout and "distributed" not in hit.stderr


def _certificates(folder):
    """A CA and one certificate it signs for 127.0.0.1 (scheduler, workers and client share it)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emrun test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


@pytest.mark.slow
def test_a_sweep_on_a_tls_scheduler_with_certificates(tiny_config):
    from distributed import LocalCluster
    from distributed.security import Security

    cwd = tiny_config.parent
    paths = _certificates(cwd)
    security = Security(tls_ca_file=str(paths["ca"]), tls_scheduler_cert=str(paths["cert"]),
                        tls_scheduler_key=str(paths["key"]), tls_worker_cert=str(paths["cert"]),
                        tls_worker_key=str(paths["key"]), tls_client_cert=str(paths["cert"]),
                        tls_client_key=str(paths["key"]), require_encryption=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tls", host="127.0.0.1",
                      security=security, dashboard_address=None, silence_logs=40) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        swept = emrun("sweep", str(tiny_config), "--quiet", "--results", "tls", "--executor", "dask", "--scheduler",
                      address, "--tls-ca", str(paths["ca"]), "--tls-cert", str(paths["cert"]), "--tls-key",
                      str(paths["key"]), cwd=cwd, timeout=180)
        assert "8 of 8 batches stored" in swept.stdout
        refused = emrun("sweep", str(tiny_config), "--quiet", "--results", "plain", "--executor", "dask",
                        "--scheduler", address, cwd=cwd, check=False, timeout=180)  # no certificates: no entry
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
    emrun("sweep", str(tiny_config), "--quiet", "--results", "local", cwd=cwd)
    pd.testing.assert_frame_equal(rows_of(cwd / "local" / "tiny"), rows_of(cwd / "tls" / "tiny"))
