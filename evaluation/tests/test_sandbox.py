"""The code sandbox: no network, a timeout, no writes outside its temporary directory, no processes."""

from __future__ import annotations

import socket
import threading
import uuid

from evaluation.sandbox import code_extract, code_run


def test_a_correct_function_passes_and_a_wrong_one_fails_per_test():
    result = code_run(code="def double(x):\n    print('hi')\n    return 2 * x",
                      tests=["double(2) == 4", "double(3) == 7"])
    assert not result.passed and [t["passed"] for t in result.tests] == [True, False]
    assert result.output == "hi\nhi\n"
    assert code_run(code="def double(x):\n    return 2 * x", tests=["double(2) == 4"]).passed


def test_no_network_even_to_a_listening_local_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ndef f():\n    return 1"
    result = code_run(code=code, tests=["f() == 1"])
    thread.join()
    server.close()

    assert not result.passed and "socket" in result.error and "not allowed" in result.error
    assert accepted == []
    raw = code_run(code="import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', 9))", tests=["True"])
    assert not raw.passed and "not allowed" in raw.error


def test_an_endless_loop_is_stopped_by_the_timeout():
    result = code_run(code="def f():\n    while True:\n        pass", tests=["f()"], timeout=1.5)
    assert result.timed_out and not result.passed and result.error == "Timed out after 1.5 s."


def test_writes_only_inside_its_own_temporary_directory(tmp_path):
    outside = tmp_path / f"escape-{uuid.uuid4().hex}.txt"
    code = (f"open({str(outside)!r}, 'w').write('x')\n")
    result = code_run(code=code, tests=["True"])
    assert not result.passed and "not allowed" in result.error and not outside.exists()

    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    for attack in (f"import os\nos.remove({str(target)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                   f"import os\nos.rename({str(target)!r}, 'mine.txt')",
                   f"import pathlib\npathlib.Path({str(target)!r}).write_text('gone')"):
        assert not code_run(code=attack, tests=["True"]).passed
    assert target.read_text() == "keep me"

    inside = code_run(code="open('scratch.txt', 'w').write('ok')\ndef f():\n    return open('scratch.txt').read()",
                      tests=["f() == 'ok'"])
    assert inside.passed


def test_no_processes_and_no_escape_hatches():
    for attack in ("import os\nos.system('true')", "import subprocess\nsubprocess.run(['true'])",
                   "import os\nos.fork()", "import ctypes", "import os\nos.chdir('/')"):
        result = code_run(code=attack, tests=["True"])
        assert not result.passed and "not allowed" in result.error, attack


def test_a_hungry_or_exiting_program_fails_cleanly():
    assert "MemoryError" in code_run(code="x = bytearray(2 * 1024 ** 3)", tests=["True"]).error
    assert not code_run(code="import sys\nsys.exit(0)", tests=["True"]).passed
    hard_exit = code_run(code="import os\nos._exit(0)", tests=["True"])
    assert not hard_exit.passed and "crashed" in hard_exit.error


def test_code_is_found_in_fences_or_bare():
    assert code_extract("Sure!\n```python\ndef f():\n    return 1\n```\nCall f().") == "def f():\n    return 1"
    assert code_extract("```py\nimport math\ndef g(): return math.pi\n```") == "import math\ndef g(): return math.pi"
    assert code_extract("```\ndef h():\n    pass\n```") == "def h():\n    pass"
    assert code_extract("Example output:\n```\n42\n```\n```python\ndef k():\n    return 42\n```") == \
        "def k():\n    return 42"
    assert code_extract("Here you go:\ndef m(x):\n    return x") == "def m(x):\n    return x"
    assert code_extract("```python\ndef n():\n    return 0") == "def n():\n    return 0"  # cut off mid-fence
    assert code_extract("```Python\n\n def p():\n     return 0\n```") == "def p():\n    return 0"  # indented
