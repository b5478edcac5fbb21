"""Screenshots of MLflow's UI in headless Chromium, over the DevTools protocol (documentation
tooling, not a test). Each shot: open a URL, let the page load, optionally type into a search
box, press buttons and slide sliders in the order given, and save the page without MLflow's
assistant side panel (or the region --clip names).

    python docs/img/shoot.py OUT.png URL [--search TEXT] [--press CSS[|TEXT]] [--slide F]
                             [--click X,Y] [--clip X,Y,W,H] [--wait S] [--height H]

The README's pictures (RUN: the run id `dmt train` printed; a server on the run's store:
`mlflow server --backend-store-uri sqlite:///$PWD/mlflow.db --host 127.0.0.1 --port 5124`;
then palette-quantised to 128 colours with Pillow to stay small):

    B=http://127.0.0.1:5124/#/experiments/1/runs/$RUN
    python docs/img/shoot.py mlflow-run.png "$B?workflowType=machine_learning" --height 900
    python docs/img/shoot.py mlflow-charts.png "$B/model-metrics?workflowType=machine_learning" \
        --search ciou
    python docs/img/shoot.py mlflow-heatmaps.png \
        "$B/artifacts/heatmaps/epoch_010.png?workflowType=machine_learning" --height 900
    python docs/img/shoot.py mlflow-registry.png http://127.0.0.1:5124/#/models/dmt --height 700

The heatmaps by step (mlflow-heatmaps-steps.png: the first and the last epoch side by side):
the image card lists every run parameter above its image (125 of them push it out of the
card), so its menu -> Configure -> "Show run parameters" off, then the step slider (F = 0 is
the first logged step, 1 the last):

    for F in 0.15 1; do   # epoch 2 and 10 of the demo; then side by side with Pillow
      python docs/img/shoot.py step$F.png "$B/model-metrics?workflowType=machine_learning" \
          --search heatmaps --height 1000 --clip 410,160,620,575 \
          --press "[data-testid=experiment-view-compare-runs-card-menu]" \
          --press "[role=menuitem]|Configure" --press "[role=switch]" --slide $F
    done
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import tempfile
import time
import urllib.request

import aiohttp

WIDTH, PANEL = 1700, 440  # MLflow 3.17 docks its assistant panel on the right, ~440 px wide

# React reads an input's value through the prototype's setter and its own input event
TYPE_JS = """(() => {
  const box = [...document.querySelectorAll('input')].filter(i => %s).pop();
  if (!box) return false;
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(box, %s);
  box.dispatchEvent(new Event('input', {bubbles: true}));
  box.dispatchEvent(new Event('change', {bubbles: true}));
  box.dispatchEvent(new Event('blur', {bubbles: true}));
  return true;
})()"""
SEARCH_BOX = "/^Search/.test(i.placeholder)"
# centre of the first visible element matching a CSS selector (and holding a text, if given)
CENTRE_JS = """(() => {
  const el = [...document.querySelectorAll(%s)].find(e => e.offsetParent !== null &&
                                                     e.innerText.includes(%s));
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})()"""
# the rail of the last visible slider (the edit dialog's, when open): x, y, width, height
RAIL_JS = """(() => {
  const handle = [...document.querySelectorAll('[role=slider]')].filter(
      e => e.offsetParent !== null).pop();
  let rail = handle && handle.parentElement;
  while (rail && rail.getBoundingClientRect().width < 100) rail = rail.parentElement;
  if (!rail) return null;
  const r = rail.getBoundingClientRect();
  return [r.x, r.y, r.width, r.height];
})()"""


async def shoot(ws_url: str, url: str, out: str, args: argparse.Namespace) -> None:
    wait, height = args.wait, args.height
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url,
                                                                      max_msg_size=0) as ws:
        counter = iter(range(1, 10_000))

        async def call(method: str, **params):
            msg_id = next(counter)
            await ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == msg_id:
                    return data.get("result", {})
            raise RuntimeError(f"{method}: no answer")

        await call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height,
                   deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait)
        async def type_into(box: str, text: str) -> None:
            found = await call("Runtime.evaluate", expression=TYPE_JS % (box, json.dumps(text)),
                               returnByValue=True)
            if not found.get("result", {}).get("value"):
                raise RuntimeError(f"{url}: no input for {text!r}")
            await asyncio.sleep(wait)

        async def mouse_click(x: float, y: float) -> None:
            # real mouse events: MLflow's menus open on pointer-down, not on a DOM click()
            for kind in ("mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                           clickCount=1)
            await asyncio.sleep(wait / 2)

        async def where(expression: str, what: str) -> list[float]:
            found = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            value = found.get("result", {}).get("value")
            if not value:
                raise RuntimeError(f"{url}: nothing to press for {what!r}")
            return value

        if args.search:
            await type_into(SEARCH_BOX, args.search)
        for kind, target in args.actions:
            if kind == "press":
                css, _, text = target.partition("|")
                await mouse_click(*await where(CENTRE_JS % (json.dumps(css), json.dumps(text)),
                                               target))
            else:  # slide: a click on the rail at that fraction of its width
                x, y, w, h = await where(RAIL_JS, "a slider")
                await mouse_click(x + 1 + float(target) * (w - 2), y + h / 2)
        if args.click:  # e.g. a chart card's full-screen button
            await mouse_click(*(float(v) for v in args.click.split(",")))
        x, y, w, h = (float(v) for v in args.clip.split(",")) if args.clip else (
            0, 0, WIDTH - (0 if args.click else PANEL), height)  # full-screen: whole window
        shot = await call("Page.captureScreenshot", format="png",
                          clip={"x": x, "y": y, "width": w, "height": h, "scale": 1})
        with open(out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("url")
    parser.add_argument("--search", default="", help="text for the page's search box")
    parser.add_argument("--press", dest="actions", action="append", default=[],
                        type=lambda v: ("press", v), metavar="CSS[|TEXT]",
                        help="press the first visible element matching CSS (holding TEXT)")
    parser.add_argument("--slide", dest="actions", action="append", type=lambda v: ("slide", v),
                        metavar="F", help="click the last visible slider at fraction F")
    parser.add_argument("--clip", default="", help="X,Y,W,H: save only this region")
    parser.add_argument("--click", default="", help="X,Y of a button to press last")
    parser.add_argument("--wait", type=float, default=8.0)
    parser.add_argument("--height", type=int, default=950)
    parser.add_argument("--port", type=int, default=9333)
    args = parser.parse_args()
    profile = tempfile.mkdtemp(prefix="dmt-chromium-")
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={args.port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{args.height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/json/list") as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        asyncio.run(shoot(pages[0]["webSocketDebuggerUrl"], args.url, args.out, args))
    finally:
        browser.terminate()
        browser.wait(timeout=10)


if __name__ == "__main__":
    main()
