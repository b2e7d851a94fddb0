"""Serve asv's html on loopback, load it in headless Chromium, check the benchmark list renders.

    python .ci/check_asv_html.py .asv/html .asv/asv_index.png

asv's page loads jQuery, flot and bootstrap from CDNs, which this network cannot reach. The same
files come from the npm registry (`npm pack`), and a copy of the page points at them.
"""

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=15000", "--window-size=1280,900"]


# CDN file name in asv's index.html -> (npm package, file inside its tarball)
VENDOR = {
    "jquery-3.3.1.min.js": ("jquery@3.3.1", "package/dist/jquery.min.js"),
    "jquery.flot.min.js": ("flot@0.8.3", "package/jquery.flot.js"),
    "jquery.flot.time.min.js": ("flot@0.8.3", "package/jquery.flot.time.js"),
    "jquery.flot.selection.min.js": ("flot@0.8.3", "package/jquery.flot.selection.js"),
    "jquery.flot.categories.min.js": ("flot@0.8.3", "package/jquery.flot.categories.js"),
    "jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "package/js/jquery.flot.orderBars.js"),
    "stupidtable.min.js": ("stupid-table-plugin@1.1.3", "package/stupidtable.min.js"),
    "md5.min.js": ("blueimp-md5@2.19.0", "package/js/md5.min.js"),
    "bootstrap.min.js": ("bootstrap@3.1.1", "package/dist/js/bootstrap.min.js"),
    "bootstrap.min.css": ("bootstrap@3.1.1", "package/dist/css/bootstrap.min.css"),
}


def offline_copy(html_dir: Path, dest: Path) -> Path:
    """A copy of asv's html whose CDN scripts and styles are local files from npm packages."""
    shutil.copytree(html_dir, dest)
    packs = dest / "_npm"
    packs.mkdir()
    for spec in sorted({spec for spec, _ in VENDOR.values()}):
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=packs, check=True,
                       capture_output=True, timeout=120)
    for name, (spec, member) in VENDOR.items():
        tarball = packs / (spec.replace("@", "-") + ".tgz")
        with tarfile.open(tarball) as tar:
            (dest / "vendor").mkdir(exist_ok=True)
            (dest / "vendor" / name).write_bytes(tar.extractfile(member).read())
    page = (dest / "index.html").read_text()
    for name in VENDOR:
        page = re.sub(r'(src|href)="https://[^"]*/' + re.escape(name) + r'"[^>]*?(?=/?>)',
                      rf'\1="vendor/{name}"', page)
    (dest / "index.html").write_text(page)
    return dest


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(html_dir: str, screenshot: str) -> int:
    names = json.loads((Path(html_dir) / "index.json").read_text())["benchmarks"]
    tmp = tempfile.TemporaryDirectory()
    html_dir = offline_copy(Path(html_dir), Path(tmp.name) / "html")
    handler = functools.partial(QuietHandler, directory=html_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/index.html"
    try:
        with tempfile.TemporaryDirectory() as profile:
            base = ["chromium", *FLAGS, f"--user-data-dir={profile}"]
            dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                                 timeout=120).stdout
            subprocess.run([*base, f"--screenshot={Path(screenshot).resolve()}", url],
                           capture_output=True, timeout=120, check=True)
    finally:
        server.shutdown()
        tmp.cleanup()
    shown = [n for n in names if n in dom]
    print(f"asv html: {len(shown)}/{len(names)} benchmarks listed in the rendered page; "
          f"screenshot {screenshot}")
    if not names or len(shown) < len(names):
        print(f"missing from the page: {sorted(set(names) - set(shown))[:10]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
