"""`make lab` serves JupyterLab, and its kernel can import course_utils."""

import json
import time
import uuid

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
