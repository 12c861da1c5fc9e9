"""`python -m kvlock.data.fetch` against a loopback HTTP server that serves miniature archives in
the published layouts the way the Hugging Face hub does (HEAD with X-Linked-Etag = SHA-256,
a redirect to the file, HTTP Range)."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest
from bench_layouts import (
    clip,
    encode_rle,
    five_entry,
    pie_entry,
    square,
    write_five_clip,
    write_five_prompts,
    write_pie_image,
    write_pie_mapping,
)
from conftest import SHARED_DATA
from omegaconf import OmegaConf

from kvlock.data import EditSample, iter_dataset
from kvlock.data.fetch import FIVE, main

CLIPS = SHARED_DATA / "videos"


class HubLike(http.server.BaseHTTPRequestHandler):
    """Serves `files` (URL path -> bytes). HEAD on /…/resolve/… answers 302 with the hub's
    headers; GET redirects to /cdn/<path>, which honours Range. `cut` (path -> bytes) makes the
    first GET of a file stop after that many bytes."""

    files: dict[str, bytes] = {}
    sha_override: dict[str, str] = {}
    cut: dict[str, int] = {}
    log: list[tuple[str, str, str | None]] = []

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        self.log.append((self.command, self.path, self.headers.get("Range")))
        if self.path.startswith("/cdn/"):
            return self._send(self.path.removeprefix("/cdn"), head)
        if self.path not in self.files:
            return self.send_error(404)
        data = self.files[self.path]
        self.send_response(302)
        self.send_header("Location", "/cdn" + self.path)
        sha = self.sha_override.get(self.path, hashlib.sha256(data).hexdigest())
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, path: str, head: bool):
        data = self.files[path]
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        stop = self.cut.pop(path, None)
        self.wfile.write(body if stop is None else body[:stop])
        if stop is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    HubLike.files, HubLike.sha_override, HubLike.cut, HubLike.log = {}, {}, {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", HubLike
    server.shutdown()
    server.server_close()


def zip_folder(folder: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for file in sorted((folder / top).rglob("*")):
            zipped.write(file, file.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def five_files(tmp_path_factory) -> dict[str, bytes]:
    """A two-clip FiVE tree as the hub holds it: six prompt files, images.zip, bmasks.zip."""
    tree = tmp_path_factory.mktemp("five_tree")
    for name in ("blackswan", "tennis"):
        write_five_clip(tree, name, *clip(CLIPS / name, 5, scale=8))
    for number in range(1, 7):
        video = "blackswan" if number % 2 else "tennis"
        write_five_prompts(tree, number, [five_entry(video, number, "a [thing]", "a [gold] thing")])
    files = {f"edit_prompt/edit{i}_FiVE.json": (tree / f"edit_prompt/edit{i}_FiVE.json").read_bytes()
             for i in range(1, 7)}
    files["images.zip"] = zip_folder(tree, "images")
    files["bmasks.zip"] = zip_folder(tree, "bmasks")
    return {f"/datasets/{FIVE}/resolve/main/{path}": data for path, data in files.items()}


def five_items(root: Path) -> list:
    cfg = OmegaConf.merge(OmegaConf.load("conf/dataset/five_bench.yaml"), {"root": str(root)})
    return list(iter_dataset(cfg))


def test_five_bench_fetch_downloads_checks_unpacks_and_resumes(hub, five_files, tmp_path, capsys):
    endpoint, server = hub
    server.files = dict(five_files)
    images = f"/datasets/{FIVE}/resolve/main/images.zip"
    server.cut = {images: len(five_files[images]) // 3}  # the first images.zip transfer breaks
    args = ["five_bench", "--root", str(tmp_path), "--endpoint", endpoint, "--no-progress"]

    assert main(args) == 1
    assert "run again to resume" in capsys.readouterr().err and (tmp_path / "images.zip.part").exists()
    assert main(args) == 0  # the second run resumes the part file with a Range request

    out = capsys.readouterr().out
    assert "images.zip: downloaded" in out and "(checked)" in out and "unpacked images" in out
    ranges = [r for method, path, r in server.log if method == "GET" and path == "/cdn" + images]
    assert ranges == [None, f"bytes={len(five_files[images]) // 3}-"]
    assert (tmp_path / "images.zip").read_bytes() == five_files[images]
    items = five_items(tmp_path)
    assert len(items) == 6 and all(isinstance(i, EditSample) for i in items), items
    assert main(args) == 0 and "already unpacked" in capsys.readouterr().out  # idempotent


def test_fetch_rejects_a_file_whose_checksum_differs(hub, five_files, tmp_path, capsys):
    endpoint, server = hub
    server.files = dict(five_files)
    server.sha_override = {f"/datasets/{FIVE}/resolve/main/bmasks.zip": "0" * 64}

    code = main(["five_bench", "--root", str(tmp_path), "--endpoint", endpoint, "--no-progress"])

    actual = hashlib.sha256(five_files[f"/datasets/{FIVE}/resolve/main/bmasks.zip"]).hexdigest()
    assert code == 1
    assert f"bmasks.zip: SHA-256 {actual} differs from {'0' * 64}" in capsys.readouterr().err
    assert not (tmp_path / "bmasks.zip").exists() and not (tmp_path / "bmasks.zip.part").exists()


def test_offline_fetch_says_what_to_download_and_where(tmp_path, capsys):
    closed = "http://127.0.0.1:9"  # discard port: nothing listens

    assert main(["five_bench", "--root", str(tmp_path), "--endpoint", closed, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err
    assert f"{closed}/datasets/{FIVE}/resolve/main/images.zip\n    -> {tmp_path / 'images.zip'}" in err
    assert f"-> {tmp_path / 'edit_prompt' / 'edit6_FiVE.json'}" in err

    assert main(["pie_bench", "--root", str(tmp_path)]) == 2
    assert "https://forms.gle/hVMkTABb4uvZVjme9" in capsys.readouterr().err


def test_files_put_in_place_by_hand_are_kept_and_unpacked(five_files, tmp_path, capsys):
    for url_path, data in five_files.items():
        dest = tmp_path / url_path.split("/resolve/main/")[1]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    code = main(["five_bench", "--root", str(tmp_path), "--endpoint", "http://127.0.0.1:9"])

    assert code == 0 and "images.zip: present, kept" in capsys.readouterr().out
    assert len(five_items(tmp_path)) == 6


def test_pie_bench_fetch_from_the_forms_link(hub, tmp_path, capsys):
    """The archive wraps the set in a top folder; fetch lifts it so DIR holds mapping_file.json."""
    tree = tmp_path / "tree" / "PIE-Bench_v1"
    mapping = {}
    for index, name in enumerate(["blackswan", "tennis"]):
        video, masks = clip(CLIPS / name, 1)
        path = f"{index + 1}_change_object_80/{index:012d}.jpg"
        write_pie_image(tree, path, square(video[0]))
        mapping[f"{index:012d}"] = pie_entry(path, str(index + 1), square(masks[0]))
    write_pie_mapping(tree, mapping)
    endpoint, server = hub
    server.files = {"/pie.zip": zip_folder(tree.parent, "PIE-Bench_v1")}
    root = tmp_path / "pie"

    code = main(["pie_bench", "--root", str(root), "--url", f"{endpoint}/pie.zip", "--no-progress"])

    assert code == 0, capsys.readouterr().err
    assert (root / "mapping_file.json").exists() and (root / "annotation_images").is_dir()
    cfg = OmegaConf.merge(OmegaConf.load("conf/dataset/pie_bench.yaml"), {"root": str(root)})
    items = list(iter_dataset(cfg))
    assert [i.edit_type for i in items] == ["1_change_object", "2_add_object"], items
    assert encode_rle(items[0].mask[0]) != []


def test_vace_benchmark_fetch_offline_and_by_hand(tmp_path, capsys):
    """The snapshot goes through huggingface_hub; unreachable, it says how to get the set, and a
    copy put in place by hand is kept."""
    closed = "http://127.0.0.1:9"

    assert main(["vace_benchmark", "--root", str(tmp_path), "--endpoint", closed]) == 2
    assert (f"huggingface-cli download ali-vilab/VACE-Benchmark --repo-type dataset --local-dir {tmp_path}"
            in capsys.readouterr().err)
    (tmp_path / "assets" / "examples" / "inpainting").mkdir(parents=True)
    assert main(["vace_benchmark", "--root", str(tmp_path), "--endpoint", closed]) == 0
    assert "VACE-Benchmark layout present, kept" in capsys.readouterr().out
