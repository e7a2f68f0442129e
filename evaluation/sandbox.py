"""Run model-written Python against tests in a child process that cannot reach the network, write outside
its own temporary directory, start processes or run for long.

Layers, outermost first (each would stop most mistakes alone; together they stop the rest):
1. `python -I -S`: no site-packages, no user site, no PYTHON* variables, an empty environment;
2. resource limits the child sets on itself before it reads the code: CPU seconds, address space, file
   size, no new processes (RLIMIT_NPROC; root ignores it, which is why layer 3 also refuses fork and exec);
3. an audit hook installed before the untrusted code runs (audit hooks cannot be removed from Python):
   it refuses sockets, process creation, ctypes, and any open-for-writing, rename, removal or directory
   change outside the temporary directory that is the child's working directory;
4. a wall-clock timeout in the parent, which kills the child's whole process group.

This protects the host, not the score: code that wants to fake its own result could print a forged one.
The S-7 threat is a weak or careless model (an infinite loop, `rm`, a download), not a model gaming S-7.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field

TIMEOUT_SECONDS = 5.0
MEMORY_BYTES = 512 * 2**20
FILE_BYTES = 1 * 2**20
OUTPUT_CHARS = 4000

# The child's program. It reads {"code", "tests", "marker"} on stdin, installs the guard, runs the code as
# module `__s7__` (so an `if __name__ == "__main__":` demo does not run), then each test expression.
_RUNNER = r'''
import json, os, resource, sys
job = json.loads(sys.stdin.read())
marker = job.pop("marker")
for limit, value in job.pop("limits").items():
    resource.setrlimit(getattr(resource, limit), (value, value))
home = os.path.realpath(os.getcwd())
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "pty.", "ctypes.", "os.kill", "os.killpg", "signal.pthread_kill", "os.chdir",
           "os.fchdir", "os.chroot", "resource.setrlimit", "sys.addaudithook", "os.add_dll_directory",
           "webbrowser.", "urllib.Request", "ftplib.", "smtplib.", "http.client.", "sqlite3.connect")
PATHS = {"os.remove": (0,), "os.unlink": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
         "os.replace": (0, 1), "os.link": (0, 1), "os.symlink": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
         "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,)}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def inside(path):
    if isinstance(path, int):
        return True  # an already open descriptor: its opening was checked
    path = os.fsdecode(path)
    return os.path.realpath(path) == home or os.path.realpath(path).startswith(home + os.sep)

def guard(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"S-7 sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (mode and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing and path is not None and not inside(path):
            raise PermissionError(f"S-7 sandbox: writing {path} is not allowed (only the working directory)")
    elif event in PATHS:
        for index in PATHS[event]:
            if index < len(args) and args[index] is not None and not inside(args[index]):
                raise PermissionError(f"S-7 sandbox: {event} outside the working directory is not allowed")

sys.addaudithook(guard)
out = {"loaded": False, "tests": []}
namespace = {"__name__": "__s7__", "__builtins__": __builtins__}
try:
    exec(compile(job["code"], "<answer>", "exec"), namespace)
    out["loaded"] = True
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
if out["loaded"]:
    for test in job["tests"]:
        try:
            ok = bool(eval(compile(test, "<test>", "eval"), namespace))
            out["tests"].append({"test": test, "passed": ok})
        except BaseException as exc:
            out["tests"].append({"test": test, "passed": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
sys.stdout.flush()
print("\n" + marker + json.dumps(out), flush=True)
'''

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def code_extract(answer: str) -> str:
    """The Python in a reply: the fenced block that is (or looks like) Python and defines something, else the
    first fence, else the reply from its first `def`/`import` line on. An unclosed last fence counts."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(answer or "")]
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    plain = [body for lang, body in blocks if lang == ""]
    for candidates in (python, plain, [body for _, body in blocks]):
        defining = [body for body in candidates if re.search(r"^\s*(def|class|import|from)\s", body, re.M)]
        if defining:
            # Small models often indent a whole block by a space or two: take the common margin off.
            return "\n\n".join(textwrap.dedent(body).strip("\n") for body in defining)
    match = re.search(r"^(def|import|from|class)\s", answer or "", re.M)
    return (answer[match.start():] if match else (answer or "")).strip("\n")


@dataclass
class SandboxResult:
    passed: bool
    tests: list[dict] = field(default_factory=list)
    error: str = ""  # why the code did not load, or why the run stopped (timeout, crash)
    timed_out: bool = False
    output: str = ""  # what the code printed, cut to OUTPUT_CHARS

    @property
    def passed_count(self) -> int:
        return sum(1 for test in self.tests if test["passed"])


def _limits(seconds: float) -> dict[str, int]:
    """Set by the child itself before it reads the code: a preexec_fn is unsafe in a threaded Celery worker."""
    return {"RLIMIT_CPU": max(1, int(seconds) + 1), "RLIMIT_AS": MEMORY_BYTES, "RLIMIT_FSIZE": FILE_BYTES,
            "RLIMIT_NPROC": 0, "RLIMIT_CORE": 0}


def code_run(*, code: str, tests: list[str], timeout: float = TIMEOUT_SECONDS) -> SandboxResult:
    """Run `code`, then each test expression, in the sandbox; passed when every test is true."""
    marker = f"@@S7-{secrets.token_hex(8)}@@"
    job = json.dumps({"code": code, "tests": tests, "marker": marker, "limits": _limits(timeout)})
    with tempfile.TemporaryDirectory(prefix="s7-code-") as home:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RUNNER], cwd=home, env={"HOME": home, "LANG": "C.UTF-8"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(job, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            stdout, _ = process.communicate()
            return SandboxResult(passed=False, timed_out=True, output=stdout[:OUTPUT_CHARS],
                                 error=f"Timed out after {timeout:g} s.")
        finally:
            _kill_group(process)  # anything it left behind in its group
    printed, found, payload = stdout.rpartition("\n" + marker)
    if not found:
        reason = "killed by a resource limit" if process.returncode and process.returncode < 0 else "crashed"
        tail = (stderr or "").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
        return SandboxResult(passed=False, output=stdout[:OUTPUT_CHARS], error=f"The code {reason}: {tail[0][:300]}")
    try:
        result = json.loads(payload.strip().splitlines()[0])
    except (ValueError, IndexError):
        return SandboxResult(passed=False, output=printed[:OUTPUT_CHARS], error="The run's report was unreadable.")
    results = list(result.get("tests", []))
    passed = bool(result.get("loaded")) and bool(results) and all(test["passed"] for test in results)
    return SandboxResult(passed=passed, tests=results, error=result.get("error", ""), output=printed[:OUTPUT_CHARS])


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
