#!/usr/bin/env python3
"""Browser check of the ConvLens gallery (public/index.html, app.js, style.css).

Drives headless Chromium through a running `convlens serve` and exits 0 only if:
  - the page loads and the layer list appears (one row per layer of GET /api/model);
  - clicking the chelsea.png sample gives predictions whose top label is "Egyptian cat",
    a heatmap image that actually loaded (naturalWidth > 0) and an activation grid;
  - moving the opacity slider reloads the heatmap;
  - choosing HiResCAM with eigen-smoothing asks for method=hirescam&eigen_smooth=true and
    the new heatmap loads, saying "method hirescam"; the method list is /api/model's;
  - "Compare methods" on chelsea.png (the methods of --compare-methods) runs as a job whose
    progress bar moves, then shows one loaded overlay per method with its scores underneath
    and each score's best method marked;
  - the first convolution layer's filter card, scrolled into view, reaches
    data-state=done with a loaded image (within --filter-timeout seconds);
  - choosing the lucid method makes that card request a lucid grid; choosing
    book again shows the book grid (from the cache);
  - the unit page (public/unit.js): the first card's link to filter 0 opens
    /#/filters/<layer>/0, a reload lands on it again, and the book and lucid pictures,
    the centre-neuron picture, the dataset examples strip (and its list) and the class
    visualisation load; choosing a sample shows the filter's activation on it
    (within --unit-timeout seconds; --unit-steps sets the lucid steps);
  - no error message is shown on the page and the browser console has no SEVERE entry.

Usage (against an already running server):
    /usr/bin/python3 tools/browser/gallery_check.py --url http://127.0.0.1:8091 --screenshots /tmp/shots

Needs Debian's python3-selenium (4.8), chromium and chromium-driver (/usr/bin/chromedriver).
Full-page screenshots are written to --screenshots at each stage.
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


class CheckFailed(Exception):
    pass


def log(message):
    print(message, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="base URL of a running convlens server, e.g. http://127.0.0.1:8091")
    p.add_argument("--screenshots", required=True, help="directory for the full-page screenshots")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds to wait for predictions, heatmap and activations (default 120; a debug server is slow)")
    p.add_argument("--filter-timeout", type=float, default=180,
                   help="seconds to wait for the first filter card to finish (default 180)")
    p.add_argument("--compare-methods", default="gradcam,gradcam++,hirescam,layercam,saliency",
                   help="methods the compare stage ticks (default: five cheap ones; a debug server is slow)")
    p.add_argument("--unit-timeout", type=float, default=420,
                   help="seconds to wait for the unit page's pictures (default 420: the dataset index is built first)")
    p.add_argument("--unit-steps", type=int, default=8,
                   help="lucid steps of the unit page's lucid pictures (default 8: a debug server on a loaded "
                        "2-core machine took 19 s for 8 steps of stem_activation, 36 s for a class logit)")
    return p.parse_args()


def make_driver(args):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    options.add_argument("--headless=new")
    options.add_argument("--no-sandbox")            # running as root in a container
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(args.chromedriver), options=options)


class Check:
    def __init__(self, driver, args):
        self.driver = driver
        self.args = args
        self.console = []          # every browser log entry seen so far
        self.shot_index = 0

    # -- helpers --------------------------------------------------------------

    def collect_console(self):
        # get_log drains the browser's buffer, so keep what it returns.
        self.console.extend(self.driver.get_log("browser"))

    def wait(self, seconds, condition, what):
        try:
            return WebDriverWait(self.driver, seconds, poll_frequency=0.25).until(lambda d: condition())
        except TimeoutException:
            self.fail_with_page_errors(f"timed out after {seconds:.0f} s waiting for {what}")

    def page_errors(self):
        """Error messages the page shows (each panel's role=alert element)."""
        return self.driver.execute_script(
            "return [...document.querySelectorAll('.error')]"
            ".filter(e => !e.hidden && e.textContent.trim())"
            ".map(e => (e.closest('[id]') ? e.closest('[id]').id + ': ' : '') + e.textContent.trim());")

    def fail_with_page_errors(self, reason):
        errors = self.page_errors()
        if errors:
            reason += "; the page shows: " + " | ".join(errors)
        raise CheckFailed(reason)

    def image_loaded(self, selector):
        return self.driver.execute_script(
            "const img = document.querySelector(arguments[0]);"
            "return !!img && img.dataset.loaded === 'true' && img.complete && img.naturalWidth > 0;", selector)

    def natural_size(self, selector):
        return self.driver.execute_script(
            "const img = document.querySelector(arguments[0]); return [img.naturalWidth, img.naturalHeight];", selector)

    def screenshot(self, name):
        """Full-page PNG through the DevTools protocol (Selenium's own is viewport-only for Chrome)."""
        self.shot_index += 1
        path = os.path.join(self.args.screenshots, f"{self.shot_index:02d}-{name}.png")
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        })
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        log(f"  screenshot {path}")

    # -- the checks -----------------------------------------------------------

    def model(self):
        with urllib.request.urlopen(self.args.url.rstrip("/") + "/api/model", timeout=30) as r:
            return json.load(r)

    def run(self):
        model = self.model()
        layers = model["layers"]
        convolutions = [l["name"] for l in layers if l.get("convolution")]
        if not convolutions:
            raise CheckFailed("GET /api/model lists no convolution layer")
        log(f"model: {model['name']}, {len(layers)} layers, {len(convolutions)} convolutions")

        started = time.monotonic()
        self.driver.get(self.args.url.rstrip("/") + "/")
        title = self.driver.title
        log(f"ok  page loaded: title {title!r}")

        self.wait(30, lambda: len(self.driver.find_elements(By.CSS_SELECTOR, "#layer-list tbody tr")) == len(layers),
                  f"the layer list ({len(layers)} rows)")
        header = self.driver.find_element(By.ID, "model-name").text
        if header != model["name"]:
            raise CheckFailed(f"header shows model {header!r}, expected {model['name']!r}")
        log(f"ok  layer list: {len(layers)} rows; header names {header!r}")
        cards = self.driver.find_elements(By.CSS_SELECTOR, ".filter-card")
        if len(cards) != len(convolutions):
            raise CheckFailed(f"{len(cards)} filter cards, expected one per convolution layer ({len(convolutions)})")
        log(f"ok  {len(cards)} filter cards (one per convolution layer)")
        self.screenshot("loaded")

        # -- a sample photo: predictions, heatmap, activations
        t0 = time.monotonic()
        self.driver.find_element(By.CSS_SELECTOR, '[data-sample="chelsea.png"]').click()
        self.wait(self.args.timeout, lambda: self.driver.find_elements(By.CSS_SELECTOR, "#predictions li"),
                  "predictions (#predictions li)")
        items = self.driver.find_elements(By.CSS_SELECTOR, "#predictions li")
        top = [(li.get_attribute("data-label"), float(li.get_attribute("data-score"))) for li in items]
        if top[0][0] != "Egyptian cat":
            raise CheckFailed(f"top prediction for chelsea.png is {top[0][0]!r}, expected 'Egyptian cat'")
        log(f"ok  predictions after {time.monotonic() - t0:.1f} s: "
            + ", ".join(f"{label} {score:.3f}" for label, score in top))
        bar = self.driver.find_element(By.CSS_SELECTOR, "#predictions li .bar span").get_attribute("style")
        if "width" not in bar:
            raise CheckFailed(f"the first prediction has no probability bar (style {bar!r})")

        self.wait(self.args.timeout, lambda: self.image_loaded("#heatmap-img"), "the heatmap image to load")
        info = self.driver.find_element(By.ID, "heatmap-info").text
        log(f"ok  heatmap loaded after {time.monotonic() - t0:.1f} s, {self.natural_size('#heatmap-img')} px: {info}")

        self.wait(self.args.timeout, lambda: self.image_loaded("#activations-img"), "the activation grid to load")
        layer = self.driver.find_element(By.ID, "activation-layer").get_attribute("value")
        if layer != convolutions[0]:
            raise CheckFailed(f"activation layer defaults to {layer!r}, expected the first convolution {convolutions[0]!r}")
        log(f"ok  activation grid of {layer} loaded after {time.monotonic() - t0:.1f} s, "
            f"{self.natural_size('#activations-img')} px")
        self.screenshot("image-analysed")

        # -- the opacity slider asks again (debounced) and the new picture loads
        old_src = self.driver.find_element(By.ID, "heatmap-img").get_attribute("src")
        self.driver.execute_script(
            "const s = document.getElementById('cam-alpha'); s.value = '0.8';"
            "s.dispatchEvent(new Event('input', {bubbles: true}));")
        self.wait(self.args.timeout,
                  lambda: self.driver.find_element(By.ID, "heatmap-img").get_attribute("src") != old_src
                  and self.image_loaded("#heatmap-img"),
                  "the heatmap to reload after moving the opacity slider")
        log("ok  heatmap reloaded after the opacity slider moved to 0.8")

        # -- another method with eigen-smoothing: the request carries both, the map loads
        from selenium.webdriver.support.ui import Select
        offered = [o.get_attribute("value") for o in self.driver.find_elements(By.CSS_SELECTOR, "#cam-method option")]
        expected = model["cam_methods"]
        if offered != expected:
            raise CheckFailed(f"method list {offered} is not /api/model's {expected}")
        self.driver.find_element(By.ID, "cam-eigen-smooth").click()
        Select(self.driver.find_element(By.ID, "cam-method")).select_by_value("hirescam")
        asked = lambda: self.driver.execute_script(
            "return performance.getEntriesByType('resource').some("
            "e => e.name.includes('/heatmap?') && e.name.includes('method=hirescam') && e.name.includes('eigen_smooth=true'))")
        self.wait(self.args.timeout, asked, "a heatmap request with method=hirescam and eigen_smooth=true")
        self.wait(self.args.timeout,
                  lambda: "method hirescam" in self.driver.find_element(By.ID, "heatmap-info").text
                  and self.image_loaded("#heatmap-img"),
                  "the eigen-smoothed HiResCAM heatmap to load")
        log(f"ok  {len(offered)} methods offered; eigen-smoothed HiResCAM loaded: "
            f"{self.driver.find_element(By.ID, 'heatmap-info').text}")
        self.screenshot("hirescam-eigen-smooth")

        self.check_compare()

        # -- filters: scroll the first convolution's card into view; it must finish
        first = convolutions[0]
        card_selector = f'.filter-card[data-layer="{first}"]'
        card = self.driver.find_element(By.CSS_SELECTOR, card_selector)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", card)
        t0 = time.monotonic()
        deadline = t0 + self.args.filter_timeout
        last_report = 0
        while True:
            state = card.get_attribute("data-state")
            if state == "done" and self.image_loaded(f"{card_selector} img"):
                break
            if state == "failed":
                raise CheckFailed(f"filter card {first} failed: {card.find_element(By.CSS_SELECTOR, '.error').text}")
            now = time.monotonic()
            if now > deadline:
                raise CheckFailed(f"filter card {first} not done after {self.args.filter_timeout:.0f} s "
                                  f"(state {state}: {card.get_attribute('data-status-text')})")
            if now - last_report >= 15:
                log(f"    {first}: {state} — {card.get_attribute('data-status-text')}")
                last_report = now
            time.sleep(0.5)
        # The grids default to method=auto; the first convolution resolves to the book (X-Method).
        if card.get_attribute("data-method") != "book":
            raise CheckFailed(f"filter card {first}: auto drew {card.get_attribute('data-method')!r}, not the book")
        transport = card.get_attribute("data-transport") or "none (served from the cache)"
        log(f"ok  filter card {first} done after {time.monotonic() - t0:.1f} s "
            f"({card.get_attribute('data-status-text')}; progress via {transport}), "
            f"grid {self.natural_size(card_selector + ' img')} px")
        done = self.driver.find_elements(By.CSS_SELECTOR, ".filter-card[data-state=done] img")
        log(f"    cards done so far: {len(done)}")
        self.screenshot("filters")

        # -- the unit page, before the lucid grids below fill the server's one job worker
        self.check_unit_page(model, convolutions[0])
        self.driver.get(self.args.url.rstrip("/") + "/")
        self.wait(30, lambda: len(self.driver.find_elements(By.CSS_SELECTOR, "#layer-list tbody tr")) == len(layers),
                  "the gallery again after the unit page")
        card = self.driver.find_element(By.CSS_SELECTOR, card_selector)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", card)
        self.wait(self.args.timeout, lambda: card.get_attribute("data-state") == "done"
                  and self.image_loaded(f"{card_selector} img"), "the first book grid again (from the cache)")

        # -- the method switch: lucid asks the server for lucid grids; switching back
        #    to book redraws the cards and the first one comes from the cache at once
        from selenium.webdriver.support.ui import Select
        Select(self.driver.find_element(By.ID, "filter-method")).select_by_value("lucid")
        lucid_seen = lambda: self.driver.execute_script(
            "return performance.getEntriesByType('resource').some("
            "e => e.name.includes('/filters/') && e.name.includes('method=lucid'))")
        self.wait(self.args.timeout, lucid_seen, "a lucid filter request after choosing lucid")
        card = self.driver.find_element(By.CSS_SELECTOR, card_selector)
        self.wait(self.args.timeout, lambda: card.get_attribute("data-state") in ("queued", "running", "done"),
                  "the first card to start its lucid grid")
        if card.get_attribute("data-state") == "failed":
            raise CheckFailed(f"lucid card {first} failed: {card.find_element(By.CSS_SELECTOR, '.error').text}")
        log(f"ok  lucid chosen: the first card asked for method=lucid ({card.get_attribute('data-status-text')})")
        Select(self.driver.find_element(By.ID, "filter-method")).select_by_value("book")
        card = self.driver.find_element(By.CSS_SELECTOR, card_selector)
        self.wait(self.args.timeout, lambda: card.get_attribute("data-state") == "done"
                  and self.image_loaded(f"{card_selector} img"), "the book grid back from the cache")
        log(f"ok  book again: {card.get_attribute('data-status-text')}")

        self.check_nothing_went_wrong()
        log(f"all checks passed in {time.monotonic() - started:.1f} s")

    def check_nothing_went_wrong(self):
        """No error message on the page, no SEVERE entry in the browser console."""
        errors = self.page_errors()
        if errors:
            raise CheckFailed("the page shows errors: " + " | ".join(errors))
        log("ok  no error message on the page")
        self.collect_console()
        severe = [e for e in self.console if e.get("level") == "SEVERE"]
        for entry in self.console:
            log(f"    console {entry.get('level')}: {entry.get('message')}")
        if severe:
            raise CheckFailed(f"{len(severe)} SEVERE console entr{'y' if len(severe) == 1 else 'ies'}: "
                              + " | ".join(e.get("message", "") for e in severe))
        log(f"ok  browser console: {len(self.console)} entries, none SEVERE")

    def check_unit_page(self, model, first_convolution):
        """The unit page of filter 0 of the first convolution's activated output."""
        layer = next(l for l in model["layers"] if l["name"] == first_convolution)
        target = layer.get("activated_output") or layer["name"]
        output = model["layers"][-1]["name"]
        card = self.driver.find_element(By.CSS_SELECTOR, f'.filter-card[data-layer="{first_convolution}"]')
        links = card.find_elements(By.CSS_SELECTOR, ".unit-links a")
        if len(links) != min(layer["filters"], model["filter_defaults"]["gallery_count"]):
            raise CheckFailed(f"the card of {first_convolution} links {len(links)} unit pages")
        href = links[0].get_attribute("href")
        if not href.endswith(f"#/filters/{target}/0"):
            raise CheckFailed(f"the card's first unit link is {href!r}")
        # Following the link itself would ask for lucid pictures of the default steps (256), too
        # slow for a debug server: the same hash route is opened with ?steps= instead, first as
        # a hash change on the open page, then by a reload (a bookmark).
        route = f"#/filters/{target}/0?steps={self.args.unit_steps}"
        self.driver.execute_script("location.hash = arguments[0];", route)
        panel = f'#unit-panel[data-layer="{target}"][data-index="0"]'
        self.wait(30, lambda: self.driver.find_elements(By.CSS_SELECTOR, panel), "the unit page after the hash change")
        log(f"ok  the card links {href}; the hash route {route} opens its unit page")
        self.driver.refresh()
        self.wait(30, lambda: self.driver.find_elements(By.CSS_SELECTOR, panel), "the unit page after a reload")
        log(f"ok  after a reload the page shows the unit page of {target} filter 0")
        t0 = time.monotonic()
        figures = {"unit-book": "book", "unit-lucid": "lucid", "unit-neuron": "lucid, centre neuron",
                   "unit-examples": "dataset examples", "unit-class-figure": f"class visualisation ({output})"}
        pending = dict(figures)
        last_report = 0
        while pending:
            for fid in list(pending):
                state = self.driver.find_element(By.ID, fid).get_attribute("data-state")
                if state == "failed":
                    raise CheckFailed(f"unit page: {figures[fid]} failed: "
                                      + self.driver.find_element(By.CSS_SELECTOR, f"#{fid} .error").text)
                if self.image_loaded(f"#{fid} img"):
                    status = self.driver.find_element(By.CSS_SELECTOR, f"#{fid} .status").text
                    log(f"ok  unit page: {figures[fid]} loaded after {time.monotonic() - t0:.1f} s, "
                        f"{self.natural_size(f'#{fid} img')} px{status}")
                    del pending[fid]
            now = time.monotonic()
            if pending and now - t0 > self.args.unit_timeout:
                raise CheckFailed(f"unit page: {', '.join(figures[f] for f in pending)} not loaded after "
                                  f"{self.args.unit_timeout:.0f} s")
            if pending and now - last_report >= 15:
                log("    waiting for " + "; ".join(
                    f"{figures[f]}: {self.driver.find_element(By.CSS_SELECTOR, f'#{f} .status').text or 'idle'}"
                    for f in pending))
                last_report = now
            time.sleep(0.5)
        self.wait(30, lambda: self.driver.find_elements(By.CSS_SELECTOR, "#unit-example-list li"),
                  "the list of dataset examples")
        for li in self.driver.find_elements(By.CSS_SELECTOR, "#unit-example-list li"):
            log(f"    example: {li.text}")
        self.screenshot("unit-page")
        # The activation of this filter on the image chosen now. (The page polled jobs: clear the
        # resource timings, whose buffer holds only the first 250 requests.)
        self.driver.execute_script("performance.clearResourceTimings();")
        self.driver.find_element(By.CSS_SELECTOR, '[data-sample="chelsea.png"]').click()
        self.wait(self.args.timeout, lambda: self.image_loaded("#unit-activation img"),
                  "the unit's activation on chelsea.png")
        asked = self.driver.execute_script(
            "return performance.getEntriesByType('resource').some("
            "e => e.name.includes('/activations?') && e.name.includes('channel=0') && e.name.includes(arguments[0]))",
            target)
        if not asked:
            raise CheckFailed("the unit page did not ask POST /activations for its layer and channel 0")
        caption = self.driver.find_element(By.CSS_SELECTOR, "#unit-activation figcaption strong").text
        if caption != "On chelsea.png":
            raise CheckFailed(f"the unit's activation is captioned {caption!r}")
        log(f"ok  unit page: activation of {target}/0 on chelsea.png, {self.natural_size('#unit-activation img')} px")
        self.driver.execute_script("document.getElementById('unit-panel').scrollIntoView({block: 'start'});")
        self.screenshot("unit-page-with-image")


    def check_compare(self):
        """The compare panel: a job with a progress bar, then a grid of overlays with their scores."""
        methods = self.args.compare_methods.split(",")
        panel = self.driver.find_element(By.ID, "compare-panel")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", panel)
        self.wait(30, lambda: len(self.driver.find_elements(By.CSS_SELECTOR, "#compare-methods input")) > 0,
                  "the compare panel's method checkboxes")
        self.driver.execute_script(
            "for (const b of document.querySelectorAll('#compare-methods input')) b.checked = arguments[0].includes(b.value);",
            methods)
        t0 = time.monotonic()
        self.driver.find_element(By.ID, "compare-start").click()
        progress_seen = set()
        deadline = t0 + self.args.timeout * 3
        while True:
            state = panel.get_attribute("data-state")
            value = self.driver.execute_script("return document.getElementById('compare-progress').value;")
            progress_seen.add(value)
            if state == "done":
                break
            if state == "failed":
                self.fail_with_page_errors("the comparison failed")
            if time.monotonic() > deadline:
                self.fail_with_page_errors(f"the comparison not done after {deadline - t0:.0f} s (state {state})")
            time.sleep(0.2)
        asked = self.driver.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/heatmap/compare?'))"
            ".map(e => e.name);")
        import urllib.parse
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(asked[-1]).query) if asked else {}
        if set(query.get("methods", [""])[0].split(",")) != set(methods):
            raise CheckFailed(f"the compare request did not ask for the ticked methods: {asked}")
        self.wait(self.args.timeout, lambda: self.driver.execute_script(
            "const imgs = [...document.querySelectorAll('#compare-grid img')];"
            "return imgs.length === arguments[0] && imgs.every(i => i.complete && i.naturalWidth > 0);", len(methods)),
                  f"{len(methods)} loaded overlays in the compare grid")
        cards = self.driver.execute_script(
            "return [...document.querySelectorAll('#compare-grid .compare-card')].map(c => ({"
            "method: c.dataset.method, width: c.querySelector('img').naturalWidth,"
            "scores: [...c.querySelectorAll('.compare-scores td')].map(td => td.textContent)}));")
        shown = [c["method"] for c in cards]
        if sorted(shown) != sorted(methods):
            raise CheckFailed(f"the grid shows {shown}, expected {methods}")
        for c in cards:
            # deletion AUC, insertion AUC, average drop, increase in confidence: each a number.
            numbers = [t.replace("★", "").strip() for t in c["scores"]]
            if len(numbers) != 4 or not all(n.replace(".", "", 1).replace("-", "", 1).isdigit() for n in numbers):
                raise CheckFailed(f"{c['method']}: the score table is not filled: {c['scores']}")
        # Each score's best method is marked, unless every method ties on it (then the line says so).
        best = self.driver.find_element(By.ID, "compare-best").text
        ties = best.count("a tie")
        marked = self.driver.execute_script(
            "return [...document.querySelectorAll('#compare-grid .compare-card')].map(c =>"
            " [...c.querySelectorAll('.compare-scores tr')].map(r => r.classList.contains('best')));")
        per_score = [any(card[i] for card in marked) for i in range(4)]
        if sum(per_score) + ties != 4:
            raise CheckFailed(f"best marks per score {per_score} with {ties} ties do not cover the 4 scores: {best}")
        log(f"ok  compare: {len(cards)} overlays ({cards[0]['width']} px wide) with scores after "
            f"{time.monotonic() - t0:.1f} s; progress values seen {sorted(v for v in progress_seen if v is not None)}")
        log(f"    {self.driver.find_element(By.ID, 'compare-info').text}")
        log(f"    {best}")
        for c in cards:
            log(f"    {c['method']}: {' / '.join(c['scores'])}")
        self.screenshot("compare-methods")


def main():
    args = parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    try:
        driver = make_driver(args)
    except WebDriverException as e:
        print(f"FAIL: cannot start Chromium through {args.chromedriver}: {e.msg}", file=sys.stderr)
        return 1
    check = Check(driver, args)
    try:
        return run_check(check)
    finally:
        driver.quit()


def run_check(check):
    try:
        check.run()
        return 0
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except WebDriverException as e:
        print(f"FAIL: browser error: {e.msg}", file=sys.stderr)
    except OSError as e:
        print(f"FAIL: cannot reach {check.args.url}: {e}", file=sys.stderr)
    # On failure: keep a picture of the page and show what the console said.
    try:
        check.screenshot("failure")
        check.collect_console()
        for entry in check.console:
            print(f"    console {entry.get('level')}: {entry.get('message')}", file=sys.stderr)
    except WebDriverException:
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
