"""The dataset browser in a real headless Chromium, opened from file:// as a person would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from evud.browse.build import build_site
from evud.core.domain import EVUD_CATEGORIES
from evud.core.params import BrowseParams
from evud.core.records import ClipStatus, Reject, RejectScope
from tests.support import browser as support_browser
from tests.support.browse_data import clip_record, gemini_text, llava_record, query_ids, write_inputs
from tests.support.browser import page_requested_urls, requested_urls, save_artifact, wait_for_download, wait_until
from tests.support.repo import git_commit_all, run

SAMPLE_QUERIES = 11  # lines of the sample's manifest: 7 clips cut (5 kept, 2 rejected), 4 queries skipped


def open_page(driver: Any, index: Path, fragment: str = "") -> None:
    """Load the page fresh, with this browser's gold edits cleared (one navigation at a time: a load started while
    another was still going is aborted, which a loaded machine made visible)."""
    driver.get(index.as_uri())
    driver.execute_script("localStorage.clear()")
    if fragment:
        driver.get(index.as_uri() + fragment)  # a fragment change: no new load
    driver.refresh()
    wait_until(lambda: driver.execute_script("return !!window.EVUDBrowse"), what="the page's script")


def count(driver: Any, name: str) -> int:
    return int(driver.find_element(By.ID, f"count-{name}").text)


def cards(driver: Any) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, "article.card")


def card(driver: Any, key: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'article.card[data-key="{key}"]')


def choose(driver: Any, select_id: str, value: str) -> None:
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def search(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    wait_until(lambda: driver.execute_script("return location.hash").find("q=") >= 0 or not text, what="search")


def kept_records(repo: Path) -> list[dict[str, Any]]:
    return json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())


def performance_entry(url: str, document_url: str) -> dict[str, Any]:
    """One DevTools Network.requestWillBeSent event as chromedriver's performance log holds it."""
    message = {"message": {"method": "Network.requestWillBeSent",
                           "params": {"documentURL": document_url, "request": {"url": url}}}}
    return {"message": json.dumps(message), "level": "INFO"}


def test_the_network_check_counts_the_pages_requests_not_the_browsers_own():
    """Chromium 150 loads its own new-tab page (chrome://, chrome-untrusted://) while the page under test loads:
    those requests are the browser's, not the page's; a page's request to any host still counts."""
    page = "file:///tmp/site/index.html"
    log = [performance_entry("chrome://new-tab-page/app.js", "chrome://new-tab-page/"),
           performance_entry("chrome-untrusted://new-tab-page/one-google-bar", "chrome-untrusted://new-tab-page/x"),
           performance_entry(page, page), performance_entry("file:///tmp/site/data.js", page + "#cat=x"),
           performance_entry("https://cdn.example.com/lib.js", page)]
    assert page_requested_urls(log) == [page, "file:///tmp/site/data.js", "https://cdn.example.com/lib.js"]


def test_sample_page_opens_from_file_with_cards_strips_and_player(browser, reproduced_sample: Path):
    index = reproduced_sample / "data/browse/index.html"
    requested_urls(browser)  # drop earlier events
    open_page(browser, index)
    assert len(cards(browser)) == SAMPLE_QUERIES == count(browser, "clips")
    strips = browser.find_elements(By.CSS_SELECTOR, "img.strip")
    assert len(strips) == 7  # every cut clip, kept or rejected
    for strip in strips:
        browser.execute_script("arguments[0].scrollIntoView()", strip)
        wait_until(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", strip),
                   what="a strip to load")
    browser.execute_script("window.scrollTo(0, 0)")
    first = browser.find_element(By.CSS_SELECTOR, "article.card[data-status=kept]")
    first.find_element(By.CSS_SELECTOR, "button.play").click()
    ready = wait_until(lambda: browser.execute_script(
        "const v = document.querySelector('video.player'); return v && v.readyState"), what="the player's metadata")
    assert ready >= 1
    save_artifact(browser, "browse-sample.png")
    urls = requested_urls(browser)
    assert urls and all(u.startswith(("file://", "blob:", "data:")) for u in urls), urls  # no network request
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_filters_and_search_give_the_expected_counts_and_the_url_restores_them(browser, reproduced_sample: Path):
    index = reproduced_sample / "data/browse/index.html"
    open_page(browser, index)
    assert (count(browser, "clips"), count(browser, "pairs")) == (11, 35)
    choose(browser, "status", "rejected")
    assert count(browser, "clips") == 2 and {c.get_attribute("data-status") for c in cards(browser)} == {"rejected"}
    choose(browser, "reason", "response_blocked")
    assert count(browser, "clips") == 1
    assert "SAFETY" in cards(browser)[0].text
    choose(browser, "reason", "")
    choose(browser, "status", "skipped")
    assert count(browser, "clips") == 4
    choose(browser, "reason", "unsafe_uid")
    assert count(browser, "clips") == 1 and "../escape" in cards(browser)[0].text
    browser.find_element(By.ID, "reset").click()
    choose(browser, "cat", "world knowledge")
    assert (count(browser, "clips"), count(browser, "pairs")) == (5, 5)
    assert {s.get_attribute("data-category") for s in browser.find_elements(By.CSS_SELECTOR, "section.cat")} \
        == {"world knowledge"}
    choose(browser, "human", "yes")
    assert count(browser, "clips") == 0
    choose(browser, "human", "no")
    search(browser, "knife")
    wait_until(lambda: count(browser, "clips") == 1, what="the search to apply")
    assert "where was the knife" in cards(browser)[0].text
    # The filter counts update with the other filters: the search left one clip with one world-knowledge pair.
    status_labels = [o.text for o in Select(browser.find_element(By.ID, "status")).options]
    assert "kept (1)" in status_labels and "rejected (0)" in status_labels
    shared = browser.current_url
    assert "q=knife" in shared and "cat=world+knowledge" in shared and "human=no" in shared
    browser.get(index.as_uri())
    wait_until(lambda: count(browser, "clips") == 11, what="an unfiltered page")
    browser.get(shared)
    browser.refresh()  # a new load of the shared link, not a fragment change
    wait_until(lambda: count(browser, "clips") == 1, what="the shared filter")
    assert browser.find_element(By.ID, "q").get_attribute("value") == "knife"
    assert Select(browser.find_element(By.ID, "cat")).first_selected_option.get_attribute("value") == "world knowledge"
    assert count(browser, "pairs") == 1


def checked_pairs(repo: Path) -> list[tuple[str, str, str, str | None]]:
    """(clip key, category, verdict, blind answer) of every pair verify checked, read from data/verdicts.jsonl."""
    rows = [json.loads(line) for line in (repo / "data/verdicts.jsonl").read_text().splitlines()]
    return [("-".join(str(r[k]) for k in ("video_uid", "clip_uid", "annotation_uid", "language_query_index")),
             p["category"], p["verdict"], p.get("blind_answer")) for r in rows for p in r["pairs"]]


def test_verdicts_show_beside_each_pair_filter_with_the_expected_counts_and_order_the_review_queue(
        browser, reproduced_sample: Path):
    pairs = checked_pairs(reproduced_sample)
    blind = [p for p in pairs if p[2] == "blind_answerable"]
    assert len(blind) == 7 and len(pairs) == 35  # the replay file's blind answers: 5 word for word, 2 by the judge
    index = reproduced_sample / "data/browse/index.html"
    open_page(browser, index)
    labels = [o.text for o in Select(browser.find_element(By.ID, "verdict")).options]
    assert "blind_answerable (7 pairs, flag)" in labels and "unverified (28 pairs)" in labels, labels
    choose(browser, "verdict", "blind_answerable")
    assert (count(browser, "clips"), count(browser, "pairs")) == (len({p[0] for p in blind}), 7)
    shown = browser.find_elements(By.CSS_SELECTOR, '.verdict[data-verdict="blind_answerable"]')
    assert len(shown) == 7
    # The blind check's answer beside the video's, on the pair it belongs to.
    mug = card(browser, next(p[0] for p in blind if p[3] == "A mug"))
    section = mug.find_element(By.CSS_SELECTOR, 'section.cat[data-category="world knowledge"]')
    assert "blind_answerable · flag" in section.text and "blind answer: A mug" in section.text
    choose(browser, "cat", "world knowledge")
    expected = [p for p in blind if p[1] == "world knowledge"]
    assert (count(browser, "clips"), count(browser, "pairs")) == (len({p[0] for p in expected}), len(expected))
    assert "cat=world+knowledge" in browser.current_url and "verdict=blind_answerable" in browser.current_url
    browser.find_element(By.ID, "reset").click()
    # The review queue: clips with a flagged pair first, by the first EVUD category holding one, then the rest.
    choose(browser, "order", "review")
    keys = browser.execute_script("return window.EVUDBrowse.matchedKeys()")
    first_category = {}
    for key, category, verdict, _ in pairs:
        if verdict == "blind_answerable":
            rank = EVUD_CATEGORIES.index(category)
            first_category[key] = min(first_category.get(key, rank), rank)
    in_ids_order = list(dict.fromkeys(p[0] for p in pairs))  # verdicts.jsonl is sorted by the ids, as the page
    queue = sorted(first_category, key=lambda k: (first_category[k], in_ids_order.index(k)))
    assert keys[:len(queue)] == queue and len(keys) == SAMPLE_QUERIES
    assert first_category[queue[0]] < first_category[queue[-1]]  # an earlier category does come first
    assert "to review: object state recognition" in cards(browser)[0].text
    assert "order=review" in browser.current_url


def edit_answer(driver: Any, key: str, category: str, text: str) -> None:
    section = card(driver, key).find_element(By.CSS_SELECTOR, f'section.cat[data-category="{category}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", section)
    section.find_element(By.CSS_SELECTOR, "button.edit").click()
    area = card(driver, key).find_element(By.CSS_SELECTOR, "textarea.gold-input")
    area.clear()
    area.send_keys(text)
    card(driver, key).find_element(By.CSS_SELECTOR, "button.save").click()


def shown_answer(driver: Any, key: str, category: str) -> str:
    section = card(driver, key).find_element(By.CSS_SELECTOR, f'section.cat[data-category="{category}"]')
    return section.find_element(By.CSS_SELECTOR, ".answer").text


def test_edited_answers_survive_a_reload_and_the_download_makes_them_gold_in_the_dataset(browser,
                                                                                         reproduced_copy: Path):
    repo = reproduced_copy
    first, second = kept_records(repo)[0]["id"], kept_records(repo)[3]["id"]
    index = repo / "data/browse/index.html"
    open_page(browser, index)
    edit_answer(browser, first, "object recognition", 'A white bar, "moving" right')
    edit_answer(browser, second, "world knowledge", "Calibrating, testing\nand aligning displays")
    browser.refresh()
    wait_until(lambda: browser.execute_script("return !!window.EVUDBrowse"), what="the reloaded page")
    assert shown_answer(browser, first, "object recognition") == 'A white bar, "moving" right'
    assert "edited (gold)" in card(browser, second).text
    for old in browser.download_dir.glob("*"):
        old.unlink()
    browser.find_element(By.ID, "download-gold").click()
    downloaded = wait_for_download(browser.download_dir, "gold_answers_browse.csv")
    shutil.copy(downloaded, repo / "data/gold/gold_answers_browse.csv")
    git_commit_all(repo, "gold answers from the browser")
    result = run(["dvc", "exp", "run", "-S", "post.gold_answers=data/gold/gold_answers_browse.csv"], repo)
    assert "Running stage 'postprocess'" in result.stdout and "Running stage 'generate'" not in result.stdout
    records = {r["id"]: r for r in kept_records(repo)}
    assert {k for k, r in records.items() if r["human_annotated"]} == {first, second}
    answers = {(k, t["category"]): t["short answer"] for k, r in records.items()
               for t in r["category_question_answer_tuples"]}
    assert answers[(first, "object recognition")] == 'A white bar, "moving" right'
    assert answers[(second, "world knowledge")] == "Calibrating, testing\nand aligning displays"
    # The rebuilt page marks them as human gold answers, now from the gold file rather than this browser.
    open_page(browser, index)
    assert "human gold" in card(browser, first).find_element(
        By.CSS_SELECTOR, 'section.cat[data-category="object recognition"]').text


def test_a_second_dataset_is_shown_beside_this_run(browser, reproduced_sample: Path, tmp_path: Path):
    records = kept_records(reproduced_sample)
    shared, dropped = records[0]["id"], records[1]["id"]
    other = [r for r in records if r["id"] != dropped]
    for pair in other[0]["category_question_answer_tuples"]:
        if pair["category"] == "world knowledge":
            pair["question"], pair["short answer"] = "What is this pattern for?", "Testing television sets"
    rejected_here = json.loads((reproduced_sample / "data/rejects.jsonl").read_text().splitlines()[-1])["key"]
    other.append(dict(records[2], id=rejected_here))  # the other run kept a clip this run rejected
    other_file = tmp_path / "lite.json"
    other_file.write_text(json.dumps(other))
    open_page(browser, reproduced_sample / "data/browse/index.html")
    browser.find_element(By.ID, "compare-file").send_keys(str(other_file))
    summary = wait_until(lambda: browser.find_element(By.ID, "compare-summary").text, what="the comparison")
    assert "this run 5 clips, other run 5 clips; in both 4, only in this run 1, only in the other run 1" in summary
    assert "world knowledge 5 5" in summary.replace("\n", " ")  # pairs per category in each run
    section = card(browser, shared).find_element(By.CSS_SELECTOR, 'section.cat[data-category="world knowledge"]')
    mine = section.find_element(By.CSS_SELECTOR, ".run.here").text
    theirs = section.find_element(By.CSS_SELECTOR, ".run.other").text
    assert "Calibrating displays" in mine and "Testing television sets" in theirs
    assert "What is this pattern for?" in theirs
    assert "clip not in the other run" in card(browser, dropped).text
    choose(browser, "cmp", "only")
    assert count(browser, "clips") == 1 and cards(browser)[0].get_attribute("data-key") == dropped
    choose(browser, "cmp", "other")
    assert count(browser, "clips") == 1 and cards(browser)[0].get_attribute("data-key") == rejected_here
    theirs = {t["category"]: t["short answer"] for t in records[2]["category_question_answer_tuples"]}
    section = cards(browser)[0].find_element(By.CSS_SELECTOR, 'section.cat[data-category="world knowledge"]')
    assert "no pair in this run" in section.find_element(By.CSS_SELECTOR, ".run.here").text
    assert theirs["world knowledge"] in section.find_element(By.CSS_SELECTOR, ".run.other").text


INJECTIONS = ("<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 2">',
              "</script><script>window.__pwned = 3</script>", "<svg onload=\"window.__pwned = 4\"></svg>")


def injected_site(root: Path) -> Path:
    """A site whose every string from Gemini, Ego4D or a gold file is an attempt at HTML injection."""
    a, b = query_ids(0), query_ids(1)
    evil = " ".join(INJECTIONS)
    answers = {c: (f"{evil} {c}?", f"{INJECTIONS[i % 4]} answer") for i, c in enumerate(
        ["object recognition", "attribute recognition", "object state recognition", "object localisation",
         "spatial reasoning", "functional reasoning", "world knowledge"])}
    manifest = [clip_record(a, query=INJECTIONS[0], template=INJECTIONS[1]),
                clip_record(b, query=INJECTIONS[2], template=INJECTIONS[3]),
                clip_record(query_ids(2), status=ClipStatus.skipped, query=None, reason=f"bad_window: {evil}")]
    rejects = [Reject(key=a.key, stage="postprocess", scope=RejectScope.pair, reason="unknown_category",
                      category=INJECTIONS[1], question=INJECTIONS[0], detail=evil),
               Reject(key=b.key, stage="postprocess", reason="no_qa_blocks", detail=evil),
               Reject(key=f"{INJECTIONS[1]}-x-y-0", stage="postprocess", scope=RejectScope.gold,
                      reason="gold_unknown_clip", detail=evil)]
    inputs = write_inputs(root, manifest, [llava_record(a, answers)], rejects, [gemini_text(b, evil)])
    build_site(inputs, root / "site", BrowseParams(), None, root / "store")
    return root / "site/index.html"


def test_injected_html_in_any_field_is_shown_as_text_and_runs_nothing(browser, tmp_path: Path):
    index = injected_site(tmp_path)
    open_page(browser, index, "#q=" + "%3Cimg%20src%3Dx%20onerror%3D%22window.__pwned%3D5%22%3E")
    assert browser.find_element(By.ID, "q").get_attribute("value") == '<img src=x onerror="window.__pwned=5">'
    browser.find_element(By.ID, "reset").click()
    assert len(cards(browser)) == 3
    # Open everything that renders text: the raw answer, an edit (re-rendered card), a comparison.
    for details in browser.find_elements(By.CSS_SELECTOR, "details"):
        browser.execute_script("arguments[0].open = true", details)
    key = query_ids(0).key
    edit_answer(browser, key, "world knowledge", INJECTIONS[1])
    evil_dataset = tmp_path / "evil.json"
    evil_dataset.write_text(json.dumps([{"id": key, "category_question_answer_tuples": [
        {"category": "world knowledge", "question": INJECTIONS[0], "short answer": INJECTIONS[3]}]},
        {"id": INJECTIONS[1], "category_question_answer_tuples": []}]))
    browser.find_element(By.ID, "compare-file").send_keys(str(evil_dataset))
    wait_until(lambda: browser.find_element(By.ID, "compare-summary").text, what="the comparison")
    page_text = browser.find_element(By.TAG_NAME, "body").text
    for text in INJECTIONS:
        assert text in page_text
    assert browser.execute_script("return window.__pwned") is None
    assert browser.execute_script("return document.querySelectorAll('script').length") == 2  # data.js, app.js
    assert browser.execute_script("return document.querySelectorAll('img:not(.strip), svg').length") == 0


def test_a_missing_browser_skips_these_tests_unless_ci_requires_it(monkeypatch, tmp_path: Path):

    monkeypatch.setattr(support_browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.delenv(support_browser.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium chromium-driver"):
        support_browser.require_browser()
    monkeypatch.setenv(support_browser.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="EVUD_REQUIRE_BROWSER=1"):
        support_browser.require_browser()
