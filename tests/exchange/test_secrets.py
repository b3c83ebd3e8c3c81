"""API keys: from the environment or a private file, refused otherwise saying why, handed to the gateway in a memfd."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from naive_mp.exchange import secrets
from naive_mp.exchange.secrets import ApiKeys, SecretsError

KEY = "K" * 60 + "abcd"
SECRET = "s3cr3t-" + "x" * 50 + "-tail42"
ROOT = Path(__file__).resolve().parents[2]


def refused(call, *args) -> str:
    """The SecretsError's message; the secret must never be in it."""
    with pytest.raises(SecretsError) as error:
        call(*args)
    message = str(error.value)
    assert SECRET not in message and SECRET[:12] not in message
    return message


def write_keys(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


GOOD_TOML = f'api_key = "{KEY}"\napi_secret = "{SECRET}"\n'


# The environment

def test_both_variables_give_the_keys():
    assert secrets.load({secrets.ENV_KEY: KEY, secrets.ENV_SECRET: SECRET}, None) == ApiKeys(KEY, SECRET)


@pytest.mark.parametrize("given, missing", [(secrets.ENV_KEY, secrets.ENV_SECRET),
                                            (secrets.ENV_SECRET, secrets.ENV_KEY)])
def test_one_variable_alone_is_refused_naming_the_other(given, missing):
    message = refused(secrets.load, {given: SECRET}, None)
    assert message.startswith(f"{given} is set but {missing} is not")


def test_no_keys_anywhere_says_both_ways():
    message = refused(secrets.load, {"HOME": "/tmp"}, None)
    assert secrets.ENV_KEY in message and secrets.ENV_SECRET in message
    assert "0600" in message and "--secrets" in message


@pytest.mark.parametrize("secret, why", [("", "empty"), ("has space", "whitespace"), (SECRET + "\n", "whitespace"),
                                          ("é" + SECRET, "printable ASCII"), ("x" * 513, "513 characters")])
def test_a_malformed_secret_is_refused_without_showing_it(secret, why):
    message = refused(secrets.load, {secrets.ENV_KEY: KEY, secrets.ENV_SECRET: secret}, None)
    assert "API secret" in message and why in message
    if secret:
        assert secret.strip() not in message


def test_the_longest_accepted_key_is_512():
    assert secrets.load({secrets.ENV_KEY: "k" * 512, secrets.ENV_SECRET: SECRET}).key == "k" * 512


# The file

def test_a_private_file_gives_the_keys_and_wins_over_the_environment(tmp_path):
    path = write_keys(tmp_path / "keys.toml", GOOD_TOML)
    assert secrets.load({secrets.ENV_KEY: "other", secrets.ENV_SECRET: "other"}, path) == ApiKeys(KEY, SECRET)


@pytest.mark.parametrize("mode, exposure", [(0o644, "can be read by its group and others"),
                                            (0o640, "can be read by its group"),
                                            (0o604, "can be read by others"),
                                            (0o620, "can be written by its group")])
def test_a_file_others_can_open_is_refused_with_the_chmod(tmp_path, mode, exposure):
    path = write_keys(tmp_path / "keys.toml", GOOD_TOML, mode)
    message = refused(secrets.load, {}, path)
    assert message == f"{path} {exposure} (mode {mode:04o}): chmod 600 {path}"


def test_a_symlink_is_followed_and_its_target_checked(tmp_path):
    target = write_keys(tmp_path / "real.toml", GOOD_TOML)
    link = tmp_path / "keys.toml"
    link.symlink_to(target)
    assert secrets.load({}, link) == ApiKeys(KEY, SECRET)
    target.chmod(0o644)
    assert "(mode 0644)" in refused(secrets.load, {}, link)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_refused(tmp_path):
    path = write_keys(tmp_path / "keys.toml", GOOD_TOML)
    os.chown(path, 65534, 65534)
    assert refused(secrets.load, {}, path) == f"{path} belongs to uid 65534, not to this user (uid 0): " \
                                              f"use a secrets file of your own"


def test_a_directory_is_refused(tmp_path):
    assert refused(secrets.load, {}, tmp_path) == f"{tmp_path} is not a regular file (a directory): " \
                                                 f"give the secrets file itself"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo, 0o600)
    assert "is not a regular file (a fifo)" in refused(secrets.load, {}, fifo)


def test_a_missing_file_is_named(tmp_path):
    assert refused(secrets.load, {}, tmp_path / "nope.toml") == \
        f"cannot open the secrets file {tmp_path / 'nope.toml'}: No such file or directory"


@pytest.mark.parametrize("text, expected", [
    (f'api_key = "{KEY}"\napi_secret = {SECRET}\n', "is not valid TOML (at line 2, column 14)"),
    (f'api_key = "{KEY}"\napi_secret = "{SECRET}\n', "is not valid TOML (at line 2, column"),
    (f'api_key = "{KEY}"\n', ": no api_secret"),
    (f'api_secret = "{SECRET}"\n', ": no api_key"),
    ("", ": no api_key and no api_secret"),
    (f'api_key = "{KEY}"\napi_secret = "{SECRET}"\napi_secrte = "{SECRET}"\n', "unknown key(s) api_secrte"),
    (f'api_key = "{KEY}"\napi_secret = 42\n', "the API secret must be a string, not int"),
    (f'api_key = "{KEY}"\napi_secret = "{SECRET} "\n', "the API secret holds whitespace"),
])
def test_a_file_without_usable_keys_is_refused_naming_the_key(tmp_path, text, expected):
    path = write_keys(tmp_path / "keys.toml", text)
    message = refused(secrets.load, {}, path)
    assert message.startswith(str(path)) and expected in message


def test_a_file_that_is_not_utf8_is_refused_without_its_bytes(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_bytes(f'api_key = "{KEY}"\napi_secret = "{SECRET}\xff"\n'.encode("latin-1"))
    path.chmod(0o600)
    assert "is not UTF-8 text" in refused(secrets.load, {}, path)


def test_repr_and_str_never_show_the_secret():
    keys = ApiKeys(KEY, SECRET)
    assert repr(keys) == str(keys) == f"{keys}" == "ApiKeys(key='KKKK…', secret=<hidden>)"
    assert SECRET not in repr([keys]) and SECRET not in repr({"k": keys})


def test_keys_are_frozen():
    with pytest.raises(AttributeError):
        ApiKeys(KEY, SECRET).secret = "other"


# The hand-off

@pytest.fixture
def handed():
    fd = secrets.hand_off(ApiKeys(KEY, SECRET))
    yield fd
    os.close(fd)


def test_take_reads_the_hand_off_again_and_again(handed):
    environ = {secrets.FD_ENV: str(handed)}
    assert secrets.handoff_fd(environ) == handed
    assert secrets.take(environ) == ApiKeys(KEY, SECRET)
    assert secrets.take(environ) == ApiKeys(KEY, SECRET)  # a restarted gateway reads it from 0 again


def test_the_hand_off_survives_exec_and_is_sealed(handed):
    assert os.get_inheritable(handed)
    with pytest.raises(PermissionError):  # F_SEAL_WRITE: the gateway cannot change what its successor reads
        os.pwrite(handed, b"x", 0)


def test_no_hand_off_is_none():
    assert secrets.take({}) is None and secrets.handoff_fd({}) is None


@pytest.mark.parametrize("value", ["five", "", "-1", "2", "3x", "²"])
def test_a_bad_descriptor_number_is_refused(value):
    assert refused(secrets.take, {secrets.FD_ENV: value}).startswith(f"{secrets.FD_ENV}={value!r} is not")


def test_a_closed_descriptor_is_refused():
    fd = secrets.hand_off(ApiKeys(KEY, SECRET))
    os.close(fd)
    assert "no such open descriptor" in refused(secrets.take, {secrets.FD_ENV: str(fd)})


def test_a_descriptor_that_is_not_the_hand_off_is_refused(tmp_path):
    path = tmp_path / "other"
    path.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert "is not the key hand-off" in refused(secrets.take, {secrets.FD_ENV: str(fd)})
    finally:
        os.close(fd)


def test_a_damaged_hand_off_is_refused_without_its_content():
    fd = os.memfd_create(secrets.MEMFD_NAME)
    try:
        os.write(fd, f'{{"api_key": "{KEY}", "api_secret": "{SECRET}'.encode())  # cut short
        assert "cannot be read back" in refused(secrets.take, {secrets.FD_ENV: str(fd)})
    finally:
        os.close(fd)


def test_without_keys_drops_the_keys_and_the_hand_off_number():
    environ = {secrets.ENV_KEY: KEY, secrets.ENV_SECRET: SECRET, secrets.FD_ENV: "7", "PATH": "/bin"}
    assert secrets.without_keys(environ) == {"PATH": "/bin"}
    assert secrets.ENV_SECRET in environ  # a copy: the caller's mapping is untouched


def test_no_second_reexec_once_handed_off():
    assert "no second re-exec" in refused(secrets.reexec_without_keys, ApiKeys(KEY, SECRET), ["/bin/true"],
                                          {secrets.FD_ENV: "5"})


# The re-exec: a real process, its /proc/self/environ read before and after

REPORT = """
import hashlib, json, os, sys
from naive_mp.exchange import secrets

def environ_has_secret():
    with open("/proc/self/environ", "rb") as f:
        return os.environ["TEST_SECRET_PROBE"][::-1].encode() in f.read()

def report(stage):
    keys = secrets.take(os.environ)
    return {"stage": stage, "pid": os.getpid(), "secret_in_environ": environ_has_secret(),
            "key": keys and keys.key, "secret_sha": keys and hashlib.sha256(keys.secret.encode()).hexdigest(),
            "argv": sys.argv[1:]}
"""

# Started with the keys in its environment: load, report, re-exec; the new
# image reports, forks, and its child reports what it sees.
REEXEC = REPORT + """
if secrets.FD_ENV not in os.environ:
    print(json.dumps(report("before")), flush=True)
    secrets.reexec_without_keys(secrets.load(os.environ, None))
print(json.dumps(report("after")), flush=True)
child = os.fork()
if child == 0:
    print(json.dumps({"stage": "child", "pid": os.getpid(), "secret_in_environ": environ_has_secret()}), flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""

PREPARE = REPORT + """
secrets.prepare(sys.argv[1] if len(sys.argv) > 1 else None)
print(json.dumps(report("prepared")), flush=True)
"""


def run(script: str, *args: str, keys_in_env: bool = True) -> list[dict]:
    """Run `script` in a fresh interpreter; its lines of JSON. The secret must never be in its output."""
    env = {name: value for name, value in os.environ.items() if name not in (secrets.ENV_KEY, secrets.ENV_SECRET,
                                                                             secrets.FD_ENV)}
    env["PYTHONPATH"] = str(ROOT)
    env["TEST_SECRET_PROBE"] = SECRET[::-1]  # reversed: this variable must not itself put the secret in environ
    if keys_in_env:
        env[secrets.ENV_KEY], env[secrets.ENV_SECRET] = KEY, SECRET
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=30)
    assert SECRET not in done.stdout and SECRET not in done.stderr
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


SECRET_SHA = hashlib.sha256(SECRET.encode()).hexdigest()


def test_reexec_scrubs_the_environment_keeps_the_pid_and_hands_the_keys_over():
    before, after, child = run(REEXEC, "--flag", "value")
    assert before["secret_in_environ"] and before["key"] is None  # the probe works: the secret was there
    assert after["pid"] == before["pid"]  # exec, not a new process
    assert after["argv"] == before["argv"] == ["--flag", "value"]  # the same command line, from sys.orig_argv
    assert after["secret_in_environ"] is False
    assert (after["key"], after["secret_sha"]) == (KEY, SECRET_SHA)
    assert child["pid"] != after["pid"] and child["secret_in_environ"] is False


def test_prepare_with_keys_in_the_environment_reexecs_once():
    (prepared,) = run(PREPARE)  # a loop would print nothing or time out; a second image would print twice
    assert prepared["secret_in_environ"] is False
    assert (prepared["key"], prepared["secret_sha"]) == (KEY, SECRET_SHA)


def test_prepare_with_a_file_reexecs_too_so_the_process_that_forks_never_read_the_secret(tmp_path):
    path = write_keys(tmp_path / "keys.toml", GOOD_TOML)
    (prepared,) = run(PREPARE, str(path), keys_in_env=False)
    assert prepared["secret_in_environ"] is False
    assert (prepared["key"], prepared["secret_sha"]) == (KEY, SECRET_SHA)


def test_prepare_without_keys_is_refused():
    with pytest.raises(SecretsError, match="no API key"):
        secrets.prepare(None, {})


# Through process.fork_child: only the child given the descriptor in keep_fds can take the keys.

CHILDREN = REPORT + """
from naive_mp.runtime import process

def body():
    try:
        keys = secrets.take(os.environ)
    except secrets.SecretsError:
        return 7
    return 0 if keys and hashlib.sha256(keys.secret.encode()).hexdigest() == sys.argv[1] else 8

secrets.prepare(None)
codes = {}
for title, keep in (("gateway", [secrets.handoff_fd(os.environ)]), ("trader XRPUSDT 1", [])):
    pid = process.fork_child(title, body, keep_fds=keep)
    codes[title] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(codes), flush=True)
"""


def test_only_the_child_that_keeps_the_descriptor_gets_the_keys():
    (codes,) = run(CHILDREN, SECRET_SHA)
    assert codes == {"gateway": 0, "trader XRPUSDT 1": 7}
