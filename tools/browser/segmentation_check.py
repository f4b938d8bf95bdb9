#!/usr/bin/env python3
"""Browser check of the gallery on a segmentation model (a per-pixel output).

Drives headless Chromium through a running `convlens serve --model SEGMENTER` and exits 0
only if, after clicking the chelsea.png sample:
  - the predictions panel shows the predicted mask over the image (#segmentation visible,
    its canvas drawn with one block per output cell, in at least two colours), not a top-5;
  - the class list is the classes that own cells, by share of the cells, each with its
    colour swatch — the same classes and shares as POST /api/predict's `segmentation` for
    the same photo;
  - the heatmap explains the class owning the most cells by default, and clicking the
    second class asks for class=<it> and loads its heatmap;
  - no error message is shown on the page and the browser console has no SEVERE entry.

Usage (against an already running server):
    /usr/bin/python3 tools/browser/segmentation_check.py --url http://127.0.0.1:8091 --screenshots /tmp/shots

Needs what gallery_check.py needs (python3-selenium, chromium, chromium-driver).
"""

import json
import os
import sys
import time
import urllib.request
import uuid

from selenium.webdriver.common.by import By

import gallery_check as gc

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "..", "..", "public", "samples", "chelsea.png")


def predict(url):
    """POST /api/predict with the sample photo, as multipart (what the gallery sends)."""
    boundary = uuid.uuid4().hex
    with open(PHOTO, "rb") as f:
        photo = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"chelsea.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url.rstrip("/") + "/api/predict?top=5", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)


class SegmentationCheck(gc.Check):
    def run(self):
        expected = predict(self.args.url)
        mask = expected.get("segmentation")
        if not mask:
            raise gc.CheckFailed("POST /api/predict has no `segmentation`: is the served model a segmentation?")
        total = len(mask["argmax"])
        shares = sorted(((n / total, c) for c, n in enumerate(mask["cells"]) if n > 0), reverse=True)
        gc.log(f"model: {self.model()['name']}, a {mask['width']}x{mask['height']} mask; classes by cells: "
               + ", ".join(f"{c} {share:.3f}" for share, c in shares))
        started = time.monotonic()
        self.driver.get(self.args.url.rstrip("/") + "/")
        self.driver.find_element(By.CSS_SELECTOR, '[data-sample="chelsea.png"]').click()
        self.wait(self.args.timeout, lambda: self.driver.execute_script(
            "const f = document.querySelector('#segmentation'); const c = document.querySelector('#segmentation-canvas');"
            "return !f.hidden && c.dataset.cells === arguments[0];", str(total)), "the mask over the image")
        colours = self.driver.execute_script(
            "const c = document.querySelector('#segmentation-canvas');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);"
            "return seen.size;")
        if colours < 2:
            raise gc.CheckFailed(f"the mask canvas holds {colours} colour(s)")
        gc.log(f"ok  mask drawn over the image ({colours} colours sampled): "
               + self.driver.find_element(By.ID, "segmentation-caption").text)

        self.wait(self.args.timeout, lambda: len(self.driver.find_elements(By.CSS_SELECTOR, "#predictions li")) == len(shares),
                  f"{len(shares)} classes listed")
        items = self.driver.find_elements(By.CSS_SELECTOR, "#predictions li")
        listed = [(float(li.get_attribute("data-score")), int(li.get_attribute("data-class"))) for li in items]
        if [c for _, c in listed] != [c for _, c in shares] or any(abs(a - b) > 1e-9 for (a, _), (b, _) in zip(listed, shares)):
            raise gc.CheckFailed(f"listed {listed}, expected the API's shares {shares}")
        swatches = self.driver.find_elements(By.CSS_SELECTOR, "#predictions li .swatch")
        if len(swatches) != len(shares):
            raise gc.CheckFailed(f"{len(swatches)} colour swatches for {len(shares)} classes")
        gc.log(f"ok  {len(shares)} classes listed by share of the cells, each with its colour")

        self.wait(self.args.timeout, lambda: self.image_loaded("#heatmap-img"), "the default heatmap")
        default = self.driver.find_element(By.ID, "heatmap-info").text
        gc.log(f"ok  default heatmap: {default}")
        self.screenshot("segmentation")
        if len(items) > 1:
            second = shares[1][1]
            items[1].find_element(By.CSS_SELECTOR, "button").click()
            asked = lambda: self.driver.execute_script(
                "return performance.getEntriesByType('resource').some(e => e.name.includes('/heatmap?')"
                " && new URL(e.name).searchParams.get('class') === arguments[0]);", str(second))
            self.wait(self.args.timeout, asked, f"a heatmap request with class={second}")
            self.wait(self.args.timeout, lambda: self.image_loaded("#heatmap-img")
                      and self.driver.find_element(By.ID, "heatmap-info").text != default, "the second class's heatmap")
            gc.log(f"ok  class {second} chosen: {self.driver.find_element(By.ID, 'heatmap-info').text}")
        self.check_nothing_went_wrong()
        gc.log(f"all checks passed in {time.monotonic() - started:.1f} s")


def main():
    args = gc.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    driver = gc.make_driver(args)
    try:
        return gc.run_check(SegmentationCheck(driver, args))
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
