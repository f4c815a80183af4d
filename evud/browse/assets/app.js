// EVUD dataset browser: filters, cards, gold edits and run comparison over window.EVUD_BROWSE (data.js).
// Safety: every string from the data (Gemini, Ego4D, gold files, a compared dataset, the URL) reaches the
// page through textContent, value or a text node, never innerHTML; the CSP forbids inline scripts anyway.
(function () {
  "use strict";

  performance.mark("evud-data-loaded"); // data.js is parsed and run by now (scripts run in order)
  const DATA = window.EVUD_BROWSE;
  const F = {};
  DATA.clip_fields.forEach(function (name, i) { F[name] = i; });
  const CATS = DATA.categories;
  const EVUD_CATS = DATA.evud_categories;
  const SCOPE = {};
  DATA.scopes.forEach(function (name, i) { SCOPE[name] = i; });
  const STORAGE_KEY = "evud-browse/gold-edits/v1";
  const DEFAULT_PAGE = 30;
  const FILTERS = ["q", "cat", "status", "reason", "human", "verdict", "cmp"];
  const VERDICTS = DATA.verdicts;
  const ACTIONS = DATA.verdict_actions; // what post.verdicts does with each verdict: keep, flag or drop

  // --- the clips, decoded once ---------------------------------------------------------------------
  const clips = DATA.clips.map(function (row, i) {
    const c = {
      i: i, row: row,
      video: DATA.uids[row[F.video]], clip: DATA.uids[row[F.clip]], annotation: DATA.uids[row[F.annotation]],
      index: row[F.index], status: DATA.statuses[row[F.status]], rejects: row[F.rejects],
      pairCats: row[F.pair_cats], goldPairs: row[F.gold_pairs], human: row[F.human] === 1, pairs: null, text: null,
      checked: row[F.verdict_pairs], review: row[F.review],
    };
    c.key = [c.video, c.clip, c.annotation, c.index].join("-");
    c.reasons = c.rejects.map(function (r) { return r[1]; });
    c.cats = new Set();
    for (let j = 0; j < c.pairCats.length; j++) c.cats.add(c.pairCats.charCodeAt(j) - 48);
    c.rejects.forEach(function (r) { if (r[2] >= 0) c.cats.add(r[2]); });
    return c;
  });
  // A clip's pairs are a JSON string in data.js (parsed only when shown or searched): V8 reads 15,000
  // strings much faster than 100,000 small arrays, which halves the time to the first cards.
  function pairsOf(c) {
    if (c.pairs === null) c.pairs = JSON.parse(c.row[F.pairs]);
    return c.pairs;
  }

  // --- small DOM helpers: text only ----------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent) {
    for (let i = 1; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }
  function $(id) { return document.getElementById(id); }
  function seconds(x) { return x === null || x === undefined ? "?" : (Math.round(x * 1000) / 1000).toString(); }

  // --- gold edits, kept in this browser (localStorage) ---------------------------------------------
  function editKey(clipKey, category) { return clipKey + "\u0000" + category; }
  function loadEdits() {
    try {
      const raw = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
      return raw && typeof raw === "object" ? raw : {};
    } catch (err) { return {}; }
  }
  let edits = loadEdits();
  function saveEdits() { localStorage.setItem(STORAGE_KEY, JSON.stringify(edits)); indexEdits(); }
  // An edit counts only for the very question it was written for (a later run may ask another one).
  function editFor(c, pair) {
    if (!editedClips.has(c.key)) return null;
    const e = edits[editKey(c.key, CATS[pair[0]])];
    return e && typeof e.a === "string" && e.q === pair[1] ? e.a : null;
  }
  let editedClips = new Set();
  function indexEdits() {
    editedClips = new Set(Object.keys(edits).map(function (k) { return k.split("\u0000")[0]; }));
  }
  function clipEdited(c) {
    return editedClips.has(c.key) && pairsOf(c).some(function (p) { return editFor(c, p) !== null; });
  }
  function goldRows() {
    const rows = [];
    clips.forEach(function (c) {
      if (!c.goldPairs && !editedClips.has(c.key)) return;
      pairsOf(c).forEach(function (p) {
        const edited = editFor(c, p);
        const gold = edited !== null ? edited : (p[3] === 1 ? p[2] : null);
        if (gold === null || !gold.trim()) return;
        rows.push({
          id: c.key, ego4d_video_uid: c.video, ego4d_clip_uid: c.clip, ego4d_annotation_uid: c.annotation,
          ego4d_language_query_index: String(c.index), category: CATS[p[0]], question: p[1], gold_answer: gold,
        });
      });
    });
    return rows;
  }
  function csvField(value) { return '"' + String(value).replace(/"/g, '""') + '"'; }
  function goldCsv() {
    const lines = [DATA.gold_columns.join(",")];
    goldRows().forEach(function (row) {
      lines.push(DATA.gold_columns.map(function (col) { return csvField(row[col]); }).join(","));
    });
    return lines.join("\n") + "\n";
  }
  function downloadGold() {
    const blob = new Blob([goldCsv()], { type: "text/csv;charset=utf-8" });
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = "gold_answers_browse.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
  }
  function updateGoldCount() {
    let editCount = 0, rows = 0;
    clips.forEach(function (c) {
      if (!editedClips.has(c.key)) { rows += c.goldPairs; return; }
      pairsOf(c).forEach(function (p) {
        const edited = editFor(c, p);
        if (edited !== null) editCount++;
        if ((edited !== null ? edited : (p[3] === 1 ? p[2] : "")).trim()) rows++;
      });
    });
    $("gold-count").textContent = rows + " gold answer" + (rows === 1 ? "" : "s") + " (" + editCount +
      " edited in this browser)";
  }

  // --- the other run (compare) ---------------------------------------------------------------------
  let other = null; // {name, byId: Map(id -> Map(category -> [question, answer])), records}
  function readOther(name, text) {
    const list = JSON.parse(text);
    if (!Array.isArray(list)) throw new Error("not a JSON list of records");
    const byId = new Map();
    let skipped = 0;
    list.forEach(function (r) {
      const tuples = r && r.category_question_answer_tuples;
      if (!r || typeof r.id !== "string" || !Array.isArray(tuples)) { skipped++; return; }
      const cats = new Map();
      tuples.forEach(function (t) {
        if (t && typeof t.category === "string") {
          cats.set(t.category, [String(t.question || ""), String(t["short answer"] || "")]);
        }
      });
      byId.set(r.id, cats);
    });
    return { name: name, byId: byId, skipped: skipped };
  }
  function pairStats(answers) {
    // answers: [[category index, answer text]] -> per category: pairs, total chars, total words
    const stats = CATS.map(function () { return { pairs: 0, chars: 0, words: 0 }; });
    answers.forEach(function (item) {
      const s = stats[item[0]];
      s.pairs++; s.chars += item[1].length; s.words += item[1].split(/\s+/).filter(Boolean).length;
    });
    return stats;
  }
  function compareSummary() {
    const box = $("compare-summary");
    box.replaceChildren();
    if (!other) { box.hidden = true; return; }
    box.hidden = false;
    const here = clips.filter(function (c) { return c.status === "kept"; });
    const hereIds = new Set(here.map(function (c) { return c.key; }));
    const both = here.filter(function (c) { return other.byId.has(c.key); }).length;
    const onlyOther = Array.from(other.byId.keys()).filter(function (id) { return !hereIds.has(id); });
    add(box, el("b", null, "Comparing with " + other.name + ": "),
      "this run " + here.length + " clips, other run " + other.byId.size + " clips; in both " + both +
      ", only in this run " + (here.length - both) + ", only in the other run " + onlyOther.length +
      (other.skipped ? " (" + other.skipped + " unreadable records skipped)" : ""));
    if (onlyOther.length) {
      const shownIds = onlyOther.slice(0, 5).join(", ") + (onlyOther.length > 5 ? ", …" : "");
      add(box, el("div", "ids", "only in the other run: " + shownIds));
    }
    const hereAnswers = [], otherAnswers = [];
    here.forEach(function (c) { pairsOf(c).forEach(function (p) { hereAnswers.push([p[0], p[2]]); }); });
    other.byId.forEach(function (cats) {
      cats.forEach(function (qa, name) { const k = CATS.indexOf(name); if (k >= 0) otherAnswers.push([k, qa[1]]); });
    });
    const a = pairStats(hereAnswers), b = pairStats(otherAnswers);
    const table = el("table");
    const head = el("tr");
    ["category", "pairs (this run)", "pairs (other)", "mean answer chars (this)", "(other)",
      "mean answer words (this)", "(other)"].forEach(function (h) { add(head, el("th", null, h)); });
    add(table, head);
    function mean(s, field) { return s.pairs ? (s[field] / s.pairs).toFixed(1) : "–"; }
    CATS.forEach(function (name, k) {
      if (k >= EVUD_CATS && !a[k].pairs && !b[k].pairs) return;
      const tr = el("tr");
      [name, a[k].pairs, b[k].pairs, mean(a[k], "chars"), mean(b[k], "chars"), mean(a[k], "words"),
        mean(b[k], "words")].forEach(function (v) { add(tr, el("td", null, v)); });
      add(table, tr);
    });
    add(box, table);
  }

  // --- verify's verdicts ---------------------------------------------------------------------------------
  // c.checked holds two characters per checked pair (kept, or dropped by its verdict): category, verdict.
  function verdictCount(c, verdict, cat) {
    let n = 0;
    for (let j = 0; j < c.checked.length; j += 2) {
      if ((cat < 0 || c.checked.charCodeAt(j) - 48 === cat) && c.checked.charCodeAt(j + 1) - 48 === verdict) n++;
    }
    return n;
  }
  // The review queue: clips holding a pair verify doubts (flagged or dropped by post.verdicts) first, by the
  // first EVUD category holding one, then every other clip; the ids' order within each.
  function reviewOrder(a, b) {
    const ra = a.review < 0 ? Infinity : a.review, rb = b.review < 0 ? Infinity : b.review;
    return ra === rb ? a.i - b.i : ra - rb;
  }

  // --- filters ---------------------------------------------------------------------------------------
  const state = { q: "", cat: "", status: "", reason: "", human: "", verdict: "", cmp: "", order: "",
    page: DEFAULT_PAGE };
  function clipText(c) {
    if (c.text === null) {
      const parts = [c.key, c.row[F.query] || "", c.row[F.template] || "", c.row[F.answer] || ""];
      pairsOf(c).forEach(function (p) { parts.push(p[1], p[2]); });
      c.rejects.forEach(function (r) { parts.push(DATA.reasons[r[1]], r[3] || "", r[4] || ""); });
      c.text = parts.join("\n").toLowerCase();
    }
    return c.text;
  }
  function tests(c, terms, cat, reason, verdict) {
    return {
      q: !terms.length || terms.every(function (t) { return clipText(c).indexOf(t) >= 0; }) ||
        (terms.length > 0 && editsMatch(c, terms)),
      cat: cat < 0 || c.cats.has(cat),
      status: !state.status || c.status === state.status,
      reason: reason < 0 || c.reasons.indexOf(reason) >= 0,
      human: !state.human || (state.human === "yes" ? c.human : state.human === "no" ? !c.human : clipEdited(c)),
      verdict: verdict < 0 || verdictCount(c, verdict, cat) > 0,
      cmp: !state.cmp || !other || compareGroup(c) === state.cmp,
    };
  }
  // Which runs have the clip in their dataset: both, only this one, only the other (rejected or absent here).
  function compareGroup(c) {
    const there = other.byId.has(c.key);
    if (c.status === "kept") return there ? "both" : "only";
    return there ? "other" : "neither";
  }
  function editsMatch(c, terms) {
    if (!editedClips.has(c.key)) return false;
    const text = pairsOf(c).map(function (p) { return editFor(c, p) || ""; }).join("\n").toLowerCase();
    return text.trim() !== "" && terms.every(function (t) { return text.indexOf(t) >= 0; });
  }
  let matched = [];
  let counts = null;
  function applyFilters() {
    const terms = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    const cat = state.cat ? CATS.indexOf(state.cat) : -1;
    const reason = state.reason ? DATA.reasons.indexOf(state.reason) : -1;
    const verdict = state.verdict ? VERDICTS.indexOf(state.verdict) : -1;
    counts = { status: {}, reason: {}, human: { yes: 0, no: 0, edited: 0 }, cat: {}, verdict: {},
      cmp: { both: 0, only: 0, other: 0, neither: 0 },
      clips: 0, pairs: 0 };
    matched = [];
    const unknownCat = state.cat && cat < 0, unknownReason = state.reason && reason < 0;
    const unknownVerdict = state.verdict && verdict < 0;
    clips.forEach(function (c) {
      const t = tests(c, terms, cat, reason, verdict);
      if (unknownCat) t.cat = false;
      if (unknownReason) t.reason = false;
      if (unknownVerdict) t.verdict = false;
      const all = t.q && t.cat && t.status && t.reason && t.human && t.verdict && t.cmp;
      const except = function (name) {
        return FILTERS.every(function (f) { return f === name || t[f]; });
      };
      if (except("status")) counts.status[c.status] = (counts.status[c.status] || 0) + 1;
      if (except("reason")) new Set(c.reasons).forEach(function (r) { counts.reason[r] = (counts.reason[r] || 0) + 1; });
      if (except("human")) {
        counts.human[c.human ? "yes" : "no"]++;
        if (clipEdited(c)) counts.human.edited++;
      }
      if (except("cat")) {
        for (let j = 0; j < c.pairCats.length; j++) {
          const k = c.pairCats.charCodeAt(j) - 48;
          counts.cat[k] = (counts.cat[k] || 0) + 1;
        }
      }
      if (except("verdict")) {
        VERDICTS.forEach(function (name, v) { counts.verdict[v] = (counts.verdict[v] || 0) + verdictCount(c, v, cat); });
      }
      if (except("cmp") && other) counts.cmp[compareGroup(c)]++;
      if (all) {
        matched.push(c);
        counts.clips++;
        if (verdict >= 0) counts.pairs += verdictCount(c, verdict, cat); // checked pairs, dropped ones included
        else for (let j = 0; j < c.pairCats.length; j++) if (cat < 0 || c.pairCats.charCodeAt(j) - 48 === cat) counts.pairs++;
      }
    });
    if (state.order === "review") matched.sort(reviewOrder);
  }

  function setOptions(select, options, current) {
    // options: [[value, label]]; the current value stays selectable even when no clip has it.
    select.replaceChildren();
    if (current && !options.some(function (o) { return o[0] === current; })) options.push([current, current + " (0)"]);
    options.forEach(function (o) {
      const option = el("option", null, o[1]);
      option.value = o[0];
      add(select, option);
    });
    select.value = current;
  }
  function updateControls() {
    const allLabel = function (n) { return "all (" + n + ")"; };
    const catOptions = [["", "all"]];
    CATS.forEach(function (name, k) {
      if (k < EVUD_CATS || counts.cat[k]) catOptions.push([name, name + " (" + (counts.cat[k] || 0) + " pairs)"]);
    });
    setOptions($("cat"), catOptions, state.cat);
    const statusTotal = DATA.statuses.reduce(function (n, s) { return n + (counts.status[s] || 0); }, 0);
    setOptions($("status"), [["", allLabel(statusTotal)]].concat(DATA.statuses.map(function (s) {
      return [s, s + " (" + (counts.status[s] || 0) + ")"];
    })), state.status);
    const reasons = DATA.reasons.map(function (name, r) { return [name, r]; })
      .sort(function (x, y) { return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0; });
    setOptions($("reason"), [["", "any"]].concat(reasons.map(function (x) {
      return [x[0], x[0] + " (" + (counts.reason[x[1]] || 0) + ")"];
    })), state.reason);
    setOptions($("human"), [["", "all"], ["yes", "human-annotated (" + counts.human.yes + ")"],
      ["no", "not human-annotated (" + counts.human.no + ")"],
      ["edited", "edited in this browser (" + counts.human.edited + ")"]], state.human);
    setOptions($("verdict"), [["", "any"]].concat(VERDICTS.map(function (name, v) {
      return [name, name + " (" + (counts.verdict[v] || 0) + " pairs" + (ACTIONS[v] !== "keep" ? ", " + ACTIONS[v] : "") + ")"];
    })), state.verdict);
    setOptions($("order"), [["", "by ids"], ["review", "review queue (doubted pairs first)"]], state.order);
    $("cmp-label").hidden = !other;
    if (other) {
      setOptions($("cmp"), [["", "all"], ["both", "in both runs (" + counts.cmp.both + ")"],
        ["only", "only in this run's dataset (" + counts.cmp.only + ")"],
        ["other", "only in the other run's dataset (" + counts.cmp.other + ")"]], state.cmp);
    }
    if ($("q").value !== state.q) $("q").value = state.q;
    const summary = $("summary");
    summary.replaceChildren();
    const clipsCount = el("b", null, counts.clips);
    clipsCount.id = "count-clips";
    const pairsCount = el("b", null, counts.pairs);
    pairsCount.id = "count-pairs";
    add(summary, clipsCount, " of " + clips.length + " clips · ", pairsCount,
      " QA pairs" + (state.verdict ? " " + state.verdict : "") + (state.cat ? " in " + state.cat : ""));
  }

  // --- URL: the filter is in the fragment, so a link shares it (works from file:// too) ------------------
  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    FILTERS.forEach(function (f) { state[f] = params.get(f) || ""; });
    state.order = params.get("order") === "review" ? "review" : "";
    const page = parseInt(params.get("page") || "", 10);
    state.page = page > 0 ? page : DEFAULT_PAGE;
  }
  function writeHash() {
    const params = new URLSearchParams();
    FILTERS.forEach(function (f) { if (state[f]) params.set(f, state[f]); });
    if (state.order) params.set("order", state.order);
    if (state.page !== DEFAULT_PAGE) params.set("page", String(state.page));
    const hash = params.toString();
    const url = location.href.split("#")[0] + (hash ? "#" + hash : "");
    if (url !== location.href) history.replaceState(null, "", url);
  }

  // --- cards -----------------------------------------------------------------------------------------
  function clipUrl(c) {
    return DATA.clips_href + [c.video, c.clip, c.annotation].map(encodeURIComponent).join("/") + "/" +
      encodeURIComponent(String(c.index)) + ".mp4";
  }
  function mediaBlock(c) {
    const box = el("div", "media");
    const sha = c.row[F.strip];
    if (sha) {
      const img = el("img", "strip");
      img.alt = DATA.strip_settings.frames + " frames spread over the clip's window";
      img.loading = "lazy";
      img.decoding = "async";
      img.height = DATA.strip_settings.height;
      img.src = "strips/" + encodeURIComponent(sha) + ".jpg";
      add(box, img);
    } else if (c.status === "kept" || c.status === "rejected") {
      add(box, el("span", "no-strip", "no frame strip (clip not readable when the site was built)"));
    }
    if (c.row[F.local] === 1) {
      const play = el("button", "play", "▶ Play clip");
      play.type = "button";
      play.addEventListener("click", function () {
        const video = el("video", "player");
        video.controls = true;
        video.preload = "metadata";
        video.src = clipUrl(c);
        video.addEventListener("error", function () {
          video.replaceWith(el("span", "no-strip", "the clip file is not beside this page (" + clipUrl(c) + ")"));
        });
        play.replaceWith(video);
        video.play().catch(function () { /* autoplay may be refused; the controls are there */ });
      });
      add(box, play);
    }
    return box;
  }
  function rejectLine(r) {
    const li = el("li");
    add(li, el("span", "reason", DATA.reasons[r[1]]), " (" + DATA.scopes[r[0]] + ")");
    if (r[2] >= 0) add(li, " " + CATS[r[2]]);
    if (r[4]) add(li, " — ", el("span", "detail", r[4]));
    return li;
  }
  function answerBlock(c, pair, card) {
    const box = el("div", "a");
    const edited = editFor(c, pair);
    const answer = el("span", "answer", edited !== null ? edited : pair[2]);
    add(box, answer);
    if (edited !== null) add(box, " ", el("span", "badge edited", "edited (gold)"));
    else if (pair[3] === 1) add(box, " ", el("span", "badge gold", "human gold"));
    const edit = el("button", "edit", "edit");
    edit.type = "button";
    edit.addEventListener("click", function () {
      const area = el("textarea", "gold-input");
      area.value = edited !== null ? edited : pair[2];
      const save = el("button", "save", "save");
      save.type = "button";
      const cancel = el("button", "cancel", "cancel");
      cancel.type = "button";
      box.replaceChildren(area, save, cancel);
      area.focus();
      save.addEventListener("click", function () {
        const text = area.value.trim();
        const key = editKey(c.key, CATS[pair[0]]);
        if (text && text !== pair[2]) edits[key] = { q: pair[1], a: text };
        else delete edits[key];
        saveEdits();
        c.text = null;
        card.replaceWith(renderCard(c));
        updateGoldCount();
      });
      cancel.addEventListener("click", function () { card.replaceWith(renderCard(c)); });
    });
    add(box, edit);
    if (edited !== null) {
      add(box, el("div", "original", pair[2]));
      const revert = el("button", "revert", "revert");
      revert.type = "button";
      revert.addEventListener("click", function () {
        delete edits[editKey(c.key, CATS[pair[0]])];
        saveEdits();
        card.replaceWith(renderCard(c));
        updateGoldCount();
      });
      add(box, revert);
    }
    return box;
  }
  // A pair's verdict (verify), what the policy does with it, why, and the blind check's answer beside the video's.
  function verdictBlock(pair) {
    if (pair[4] < 0) return null;
    const name = VERDICTS[pair[4]], action = ACTIONS[pair[4]];
    const box = el("div", "verdict");
    box.dataset.verdict = name;
    add(box, el("span", "badge verdict-" + name, name + (action !== "keep" ? " · " + action : "")));
    if (pair[5]) add(box, " blind answer: ", el("span", "blind-answer", pair[5]));
    // "not_grounded" is every pair's state while the grounding check is off: said once in docs/browse.md, not 7 times a card.
    if (pair[6] && pair[6].indexOf("not_grounded:") !== 0) add(box, " ", el("span", "detail", "(" + pair[6] + ")"));
    return box;
  }
  function categorySection(c, k, card) {
    const mine = pairsOf(c).filter(function (p) { return p[0] === k; });
    const dropped = c.rejects.filter(function (r) { return r[0] === SCOPE.pair && r[2] === k; });
    const theirs = other && other.byId.has(c.key) ? other.byId.get(c.key).get(CATS[k]) : undefined;
    if (!mine.length && !dropped.length && !theirs) return null;
    const section = el("section", "cat");
    section.dataset.category = CATS[k];
    add(section, el("h3", null, CATS[k]));
    const runs = el("div", "runs");
    const here = el("div", "run here");
    if (other) add(here, el("div", "run-label", "this run"));
    mine.forEach(function (p) { add(here, el("div", "q", p[1]), answerBlock(c, p, card), verdictBlock(p)); });
    dropped.forEach(function (r) {
      add(here, add(el("div", "dropped"), "dropped: ", el("span", "reason", DATA.reasons[r[1]]),
        r[3] ? " — " + r[3] : "", r[4] ? add(el("span", "detail"), " (" + r[4] + ")") : null));
    });
    if (!mine.length && !dropped.length) add(here, el("div", "missing", "no pair in this run"));
    add(runs, here);
    if (other) {
      const there = add(el("div", "run other"), el("div", "run-label", "other run: " + other.name));
      if (theirs) add(there, el("div", "q", theirs[0]), add(el("div", "a"), el("span", "answer", theirs[1])));
      else add(there, el("div", "missing", other.byId.has(c.key) ? "no pair in the other run" : "clip not in the other run"));
      add(runs, there);
    }
    add(section, runs);
    return section;
  }
  function renderCard(c) {
    const card = el("article", "card status-" + c.status);
    card.dataset.key = c.key;
    card.dataset.status = c.status;
    if (other) card.classList.add("comparing");
    const head = el("div", "card-head");
    add(head, el("span", "badge " + c.status, c.status));
    if (c.human) add(head, el("span", "badge human", "human-annotated"));
    if (clipEdited(c)) add(head, el("span", "badge edited", "edited here"));
    if (c.review >= 0) add(head, el("span", "badge review", "to review: " + CATS[c.review]));
    const query = c.row[F.query];
    add(head, el("h2", query ? "query" : "query none", query || "(no query text)"));
    add(card, head);
    if (c.row[F.template]) add(card, el("div", "template", "template: " + c.row[F.template]));
    add(card, el("div", "ids", "video " + c.video + " · clip " + c.clip + " · annotation " + c.annotation +
      " · query " + c.index + " · window " + seconds(c.row[F.window_start]) + "–" + seconds(c.row[F.window_end]) +
      " s (" + seconds(c.row[F.duration]) + " s)"));
    add(card, mediaBlock(c));
    const why = c.rejects.filter(function (r) { return r[0] !== SCOPE.pair; });
    if (why.length) add(card, add.apply(null, [el("ul", "why")].concat(why.map(rejectLine))));
    const pairs = el("div", "pairs");
    const cat = state.cat ? CATS.indexOf(state.cat) : -1;
    CATS.forEach(function (name, k) {
      if (cat >= 0 && k !== cat) return;
      const section = categorySection(c, k, card);
      if (section) add(pairs, section);
    });
    const loose = c.rejects.filter(function (r) { return r[0] === SCOPE.pair && r[2] < 0; });
    loose.forEach(function (r) {
      add(pairs, add(el("div", "dropped"), "dropped: ", el("span", "reason", DATA.reasons[r[1]]),
        r[4] ? add(el("span", "detail"), " (" + r[4] + ")") : null));
    });
    add(card, pairs);
    const answer = c.row[F.answer];
    if (answer) {
      add(card, add(el("details", "raw"), el("summary", null, "Gemini's answer (as parsed)"), el("pre", null, answer)));
    }
    return card;
  }

  let shown = 0;
  function showMore() {
    const end = Math.min(matched.length, shown + state.page);
    const fragment = document.createDocumentFragment();
    for (let i = shown; i < end; i++) fragment.appendChild(renderCard(matched[i]));
    $("cards").appendChild(fragment);
    shown = end;
    $("more-bar").hidden = shown >= matched.length;
    $("more-count").textContent = shown + " of " + matched.length + " shown";
  }
  function refresh() {
    applyFilters();
    updateControls();
    writeHash();
    $("cards").replaceChildren();
    shown = 0;
    showMore();
    window.scrollTo(0, 0);
  }

  function orphanBox() {
    if (!DATA.orphan_rejects.length) return;
    const box = $("orphans");
    box.hidden = false;
    const list = el("ul", "why");
    DATA.orphan_rejects.forEach(function (r) { add(list, add(rejectLine(r), " [" + r[5] + "]")); });
    add(box, add(el("details"), el("summary", null, DATA.orphan_rejects.length +
      " reject(s) name no clip of the manifest (e.g. gold rows with unknown ids)"), list));
  }

  // --- wiring ----------------------------------------------------------------------------------------
  function onControl(name, value) { state[name] = value; refresh(); }
  ["cat", "status", "reason", "human", "verdict", "cmp", "order"].forEach(function (name) {
    $(name).addEventListener("change", function (e) { onControl(name, e.target.value); });
  });
  let searchTimer = null;
  $("q").addEventListener("input", function (e) {
    clearTimeout(searchTimer);
    const value = e.target.value;
    searchTimer = setTimeout(function () { onControl("q", value); }, 150);
  });
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); });
  $("reset").addEventListener("click", function () {
    FILTERS.forEach(function (f) { state[f] = ""; });
    state.order = "";
    refresh();
  });
  $("more").addEventListener("click", showMore);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; }) && shown < matched.length && shown > 0) showMore();
    }, { rootMargin: "400px" }).observe($("more-bar"));
  }
  window.addEventListener("hashchange", function () { readHash(); refresh(); });
  $("download-gold").addEventListener("click", downloadGold);
  $("discard-edits").addEventListener("click", function () {
    if (!window.confirm("Discard every answer edited in this browser?")) return;
    edits = {};
    saveEdits();
    updateGoldCount();
    refresh();
  });
  $("compare-file").addEventListener("change", function (e) {
    const file = e.target.files && e.target.files[0];
    if (!file) return;
    const reader = new FileReader();
    $("compare-status").textContent = "reading " + file.name + "…";
    reader.onload = function () {
      try {
        other = readOther(file.name, String(reader.result));
        $("compare-status").textContent = "comparing with " + file.name;
      } catch (err) {
        other = null;
        $("compare-status").textContent = file.name + " is not a dataset file: " + err.message;
      }
      compareSummary();
      refresh();
    };
    reader.readAsText(file);
  });

  // Hooks for the benchmark and tests: the same code paths a click takes.
  window.EVUDBrowse = {
    setFilter: function (values) { Object.assign(state, values); refresh(); },
    matchedCount: function () { return matched.length; },
    matchedKeys: function () { return matched.map(function (c) { return c.key; }); },
    goldCsv: goldCsv,
  };

  indexEdits();
  readHash();
  orphanBox();
  updateGoldCount();
  refresh();
  // Marks for the benchmark: cards in the DOM, then (after the next frame) on screen.
  performance.mark("evud-first-cards");
  requestAnimationFrame(function () { setTimeout(function () { performance.mark("evud-cards-painted"); }, 0); });
})();
