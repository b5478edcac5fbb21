"""Screenshots of MLflow's UI in headless Chromium, over the DevTools protocol (documentation
tooling, not a test; see docs/img/take.sh). Each shot: open a URL, let the page load, optionally
type into a search box, and save the page without MLflow's assistant side panel.

    python docs/img/shoot.py OUT.png URL [--search TEXT] [--step N] [--click X,Y] [--wait S]

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
STEP_BOX = "i.closest('[class]') && i.type !== 'range' && /^[0-9]+$/.test(i.value)"


async def shoot(ws_url: str, url: str, out: str, search: str, step: str, click: str,
                wait: float, height: int) -> None:
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

        if search:
            await type_into(SEARCH_BOX, search)
        if click:  # e.g. a chart card's full-screen button
            x, y = (float(v) for v in click.split(","))
            for kind in ("mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                           clickCount=1)
            await asyncio.sleep(wait)
        if step:  # the last input of that kind: the full-screen card's, when open
            await type_into(STEP_BOX, step)
        shot = await call("Page.captureScreenshot", format="png", clip={
            "x": 0, "y": 0, "width": WIDTH - (0 if click else PANEL), "height": height,
            "scale": 1})  # a full-screen card (click) is centred on the whole window
        with open(out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("url")
    parser.add_argument("--search", default="", help="text for the page's search box")
    parser.add_argument("--step", default="", help="step for an image card's step box")
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
        asyncio.run(shoot(pages[0]["webSocketDebuggerUrl"], args.url, args.out, args.search,
                          args.step, args.click, args.wait, args.height))
    finally:
        browser.terminate()
        browser.wait(timeout=10)


if __name__ == "__main__":
    main()
