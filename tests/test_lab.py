"""`make lab` serves JupyterLab, and its kernel can import course_utils."""

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket
from lab_server import copy_notebooks, serve_lab

from course_utils.lab import REPO_ROOT, lab_command

pytestmark = pytest.mark.slow
TOKEN = "course-test-token"


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    notebooks = copy_notebooks(tmp_path_factory.mktemp("lab") / "notebooks")
    with serve_lab(notebooks, TOKEN) as base:
        yield base


def test_lab_command_refuses_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook directory not found"):
        lab_command(notebook_dir=tmp_path / "nope")


def test_lab_page_answers(lab_server):
    page = requests.get(f"{lab_server}/lab", params={"token": TOKEN}, timeout=30)
    assert page.status_code == 200
    assert "JupyterLab" in page.text


def test_course_kernel_is_registered(lab_server):
    specs = requests.get(f"{lab_server}/api/kernelspecs", params={"token": TOKEN}, timeout=10)
    assert "cnn-course" in specs.json()["kernelspecs"]


def _execute(base: str, kernel_id: str, code: str, timeout: float = 60) -> dict:
    """Run `code` in a kernel over the websocket API; return the collected stream and status."""
    ws_url = base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels?token={TOKEN}"
    ws = websocket.create_connection(ws_url, timeout=timeout)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False},
    }))
    out, status = [], None
    deadline = time.monotonic() + timeout
    while status is None and time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
    ws.close()
    return {"status": status, "output": "".join(out)}


def test_kernel_imports_course_utils(lab_server):
    kernel = requests.post(f"{lab_server}/api/kernels", params={"token": TOKEN},
                           json={"name": "cnn-course"}, timeout=30).json()
    try:
        result = _execute(lab_server, kernel["id"],
                          "import course_utils.lab, torch; print('ok', course_utils.lab.__file__)")
        assert result["status"] == "ok", result["output"]
        assert str(REPO_ROOT / "course_utils") in result["output"]
    finally:
        requests.delete(f"{lab_server}/api/kernels/{kernel['id']}", params={"token": TOKEN},
                        timeout=10)


def test_students_get_no_formgrader(lab_server):
    page = requests.get(f"{lab_server}/formgrader", params={"token": TOKEN}, timeout=30)
    assert page.status_code == 404


def test_make_formgrader_serves_the_course(tmp_path):
    """`make formgrader`: the course root with nbgrader's formgrader, which sees every lesson."""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO_ROOT / "nbgrader_config.py", course)
    shutil.copytree(REPO_ROOT / "solutions", course / "solutions")
    copy_notebooks(course / "notebooks")
    # The venv's bin first on PATH, as make does: the formgrader's gradebook runs `alembic`.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with serve_lab(course, TOKEN, env=env, instructor=True) as base, requests.Session() as web:
        page = web.get(f"{base}/formgrader", params={"token": TOKEN}, timeout=60)
        assert page.status_code == 200
        # The formgrader's API wants the page's XSRF cookie back, as the browser sends it.
        listed = web.get(f"{base}/formgrader/api/assignments", params={"token": TOKEN},
                         headers={"X-XSRFToken": web.cookies.get("_xsrf", "")}, timeout=60)
        assert listed.status_code == 200, listed.text[:500]
        listed = listed.json()
    lessons = sorted(p.name for p in (REPO_ROOT / "solutions").iterdir() if p.is_dir())
    assert sorted(a["name"] for a in listed) == lessons
