/*
 * govchat widget: a chat box for answers from GOV.UK guidance.
 *
 *   <div id="govchat"></div>
 *   <script src="https://chat.example/static/govchat-widget.js"
 *           data-api-base="https://chat.example" defer></script>
 *
 * Attributes on the script tag (all optional):
 *   data-api-base       the govchat API (default: where this script came from)
 *   data-target         CSS selector of the element to mount into (default: #govchat, made if missing)
 *   data-heading-level  level of the widget's heading, 1-4 (default 2)
 *   data-api-key        a client API key, if the API requires one (sent as X-API-Key)
 *   data-styles="off"   do not add the stylesheets (the page brings its own)
 *
 * Safety: nothing from a question, an answer or a source is ever parsed as HTML. Text goes in
 * with textContent; the small markdown renderer below builds DOM nodes itself and only makes
 * links to https://www.gov.uk/ and to the answer's own source URLs.
 */
(function () {
  "use strict";

  const script =
    document.currentScript || document.querySelector('script[src*="govchat-widget.js"]');
  const scriptUrl = new URL(script ? script.src : "/static/govchat-widget.js", location.href);
  const data = (script && script.dataset) || {};
  const apiBase = (data.apiBase || scriptUrl.origin).replace(/\/+$/, "");
  const staticBase = new URL(".", scriptUrl).href;
  const STORE_KEY = "govchat:v1:" + apiBase;
  const API = apiBase + "/api/v1";

  const TEXT = {
    intro:
      "Answers come only from GOV.UK guidance, with links to the sections they use. " +
      "Check the linked pages before you act on an answer.",
    privacy: "Do not enter personal details, such as your name, address or reference numbers.",
    label: "Your question",
    hint: "Press Enter to send. Press Shift and Enter for a new line.",
    ask: "Ask",
    stop: "Stop answer",
    reset: "Start a new conversation",
    waiting: "Searching GOV.UK guidance…",
    streaming: "Writing an answer from these pages…",
    stopped: "You stopped this answer.",
    interrupted: "This answer was interrupted. Ask again if you still need it.",
    error: "Sorry, there is a problem with the service. Try again later.",
    offline: "You are offline. Check your internet connection, then try again.",
    offlineNotice: "You are offline. You can ask a question when your connection is back.",
    busy: "Wait for this answer to finish, or stop it, before you ask another question.",
    empty: "Enter a question",
    tooLong: (n) => `Your question must be ${n} characters or fewer`,
    full: "This conversation is full. Start a new conversation to ask more.",
    retry: "Try again",
    sources: "Sources",
    matched: "GOV.UK guidance found",
    useful: "Was this useful?",
    yes: "Yes",
    no: "No",
    thanks: "Thank you for your feedback.",
    tellUs: "Tell us more (optional)",
    reasonLegend: "Why?",
    comment: "Anything else? Do not include personal details.",
    send: "Send",
    sent: "Thank you. Your feedback has been sent.",
    feedbackError: "Your feedback could not be sent. Try again later.",
    you: "You asked:",
    rateLimited: (s) =>
      `You have asked a lot of questions in a short time. Wait ${s} before you try again.`,
  };
  const REASONS = {
    true: ["It answered my question", "It was clear", "Other"],
    false: [
      "It did not answer my question",
      "It was wrong or out of date",
      "It was hard to understand",
      "The links did not help",
      "Other",
    ],
  };
  const REFUSED_LABEL = {
    cannot_answer: "No answer found in GOV.UK guidance",
    invalid_input: "Question not accepted",
    unclear: "Question not clear",
  };

  // ------------------------------------------------------------------ small DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let uid = 0;
  const newId = (prefix) => `govchat-${prefix}-${Date.now().toString(36)}-${++uid}`;

  // ------------------------------------------------------------------ safe markdown

  /** An http(s) URL allowed as a link: GOV.UK, or one of this answer's sources. */
  function safeHref(raw, allowed) {
    let url;
    try {
      url = new URL(raw);
    } catch (e) {
      return null;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    if (url.protocol === "https:" && url.hostname === "www.gov.uk") return url.href;
    return allowed.has(url.href) ? url.href : null;
  }

  const INLINE =
    /\[([^\]\n]{1,500})\]\(\s*([^\s()]+(?:\([^\s()]*\))?[^\s()]*)\s*\)|\*\*([^*\n]+?)\*\*|(https?:\/\/[^\s<>()\]]+[^\s<>().,;:!?'"\]])/g;

  function renderInline(text, allowed) {
    const out = document.createDocumentFragment();
    let last = 0;
    let m;
    INLINE.lastIndex = 0;
    while ((m = INLINE.exec(text))) {
      if (m.index > last) out.append(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) {
        const href = safeHref(m[2], allowed);
        out.append(href ? el("a", { class: "govuk-link", href, text: m[1] }) : m[1]);
      } else if (m[3] !== undefined) {
        out.append(el("strong", { text: m[3] }));
      } else {
        const href = safeHref(m[4], allowed);
        out.append(href ? el("a", { class: "govuk-link", href, text: m[4] }) : m[4]);
      }
      last = INLINE.lastIndex;
    }
    if (last < text.length) out.append(document.createTextNode(text.slice(last)));
    return out;
  }

  /** Markdown subset -> DOM: paragraphs, bulleted and numbered lists, **bold**, links.
   *  (No __bold__: underscores are common in URLs and identifiers.) */
  function renderMarkdown(markdown, allowedUrls) {
    const allowed = new Set();
    for (const u of allowedUrls || []) {
      try {
        allowed.add(new URL(u).href);
      } catch (e) {
        /* not a URL: never a link */
      }
    }
    const root = document.createDocumentFragment();
    let para = null;
    let list = null;
    const flush = () => {
      if (para) root.append(el("p", { class: "govuk-body" }, renderInline(para.join(" "), allowed)));
      para = null;
    };
    for (const rawLine of String(markdown || "").replace(/\r\n?/g, "\n").split("\n")) {
      const line = rawLine.trim();
      const bullet = /^[-*•]\s+(.*)$/.exec(line);
      const numbered = /^\d{1,3}[.)]\s+(.*)$/.exec(line);
      const heading = /^#{1,6}\s+(.*)$/.exec(line);
      if (!line) {
        flush();
        list = null;
      } else if (bullet || numbered) {
        flush();
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag, {
            class: "govuk-list " + (bullet ? "govuk-list--bullet" : "govuk-list--number"),
          });
          root.append(list);
        }
        list.append(el("li", null, renderInline((bullet || numbered)[1], allowed)));
      } else if (heading) {
        flush();
        list = null;
        root.append(el("p", { class: "govuk-body" }, el("strong", { text: heading[1] })));
      } else {
        list = null;
        (para = para || []).push(line);
      }
    }
    flush();
    return root;
  }

  // ------------------------------------------------------------------ SSE over fetch

  /** Read a text/event-stream body, calling onEvent(name, data) for each event. */
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    let dataLines = [];
    const dispatch = () => {
      if (dataLines.length) onEvent(event, dataLines.join("\n"));
      event = "message";
      dataLines = [];
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") dispatch();
        else if (line.startsWith(":")) continue;
        else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") dataLines.push(val);
        }
      }
    }
    dispatch();
  }

  // ------------------------------------------------------------------ state

  function load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      if (saved && Array.isArray(saved.turns)) return saved;
    } catch (e) {
      /* storage off or corrupt: start afresh */
    }
    return { conversationId: null, turns: [], endUser: null };
  }

  const state = load();
  state.endUser =
    state.endUser ||
    (window.crypto && crypto.randomUUID ? crypto.randomUUID() : newId("user").slice(8));

  function save() {
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
    } catch (e) {
      /* storage full or off: the conversation just won't survive a reload */
    }
  }

  // ------------------------------------------------------------------ the widget

  function mount(config) {
    const level = Math.min(4, Math.max(1, parseInt(data.headingLevel || "2", 10) || 2));
    const h = (n) => "h" + Math.min(6, level + n);
    const maxChars = config.max_question_chars || 1000;

    let target = document.querySelector(data.target || "#govchat");
    if (!target) {
      target = el("div", { id: "govchat" });
      document.body.append(target);
    }
    const ids = {
      title: newId("title"),
      input: newId("question"),
      hint: newId("hint"),
      error: newId("error"),
    };
    const root = el("section", {
      class: "govchat" + (config.brand_govuk ? " govchat--govuk" : ""),
      "aria-labelledby": ids.title,
      lang: "en",
    });
    if (config.brand_colour) root.style.setProperty("--govchat-brand-colour", config.brand_colour);

    const title = el(h(0), { class: "govuk-heading-l govchat__title", id: ids.title });
    title.textContent = config.brand_name || "Ask about GOV.UK guidance";
    const log = el("div", { class: "govchat__log" });
    const live = el("div", {
      class: "govuk-visually-hidden",
      "aria-live": "polite",
      "aria-atomic": "true",
      "data-govchat-live": "",
    });
    const notice = el("div", { class: "govchat__notice", role: "status", hidden: true });
    const errorMsg = el("p", { class: "govuk-error-message", id: ids.error, hidden: true });
    const input = el("textarea", {
      class: "govuk-textarea govchat__input",
      id: ids.input,
      name: "question",
      rows: "3",
      maxlength: String(maxChars),
      autocomplete: "off",
      spellcheck: "true",
      "aria-describedby": ids.hint,
    });
    const askBtn = el("button", { type: "submit", class: "govuk-button govchat__ask" }, TEXT.ask);
    const stopBtn = el(
      "button",
      { type: "button", class: "govuk-button govuk-button--warning govchat__stop", hidden: true },
      TEXT.stop
    );
    const resetBtn = el(
      "button",
      { type: "button", class: "govuk-button govuk-button--secondary govchat__reset" },
      TEXT.reset
    );
    const group = el(
      "div",
      { class: "govuk-form-group" },
      el("label", { class: "govuk-label govuk-label--s", for: ids.input }, TEXT.label),
      el("div", { class: "govuk-hint", id: ids.hint }, TEXT.privacy + " " + TEXT.hint),
      errorMsg,
      input
    );
    const form = el(
      "form",
      { class: "govchat__form", novalidate: true },
      group,
      el("div", { class: "govuk-button-group" }, askBtn, stopBtn, resetBtn)
    );
    root.append(
      title,
      el("p", { class: "govuk-body govchat__intro" }, TEXT.intro),
      log,
      notice,
      form,
      live
    );
    target.replaceChildren(root);

    document.querySelectorAll("[data-govchat-brand]").forEach((n) => {
      n.textContent = config.brand_name || n.textContent;
    });
    if (config.brand_govuk) {
      document.documentElement.classList.add("govchat-page--govuk");
      document.querySelectorAll("[data-govchat-govuk-only]").forEach((n) => (n.hidden = false));
    }
    if (config.brand_colour) {
      document.documentElement.style.setProperty("--govchat-brand-colour", config.brand_colour);
    }

    let running = null; // {turn, controller}
    const views = new Map(); // turn.id -> view

    function announce(text) {
      live.textContent = "";
      // A fresh text node after a tick makes screen readers announce repeated messages too.
      setTimeout(() => (live.textContent = text), 50);
    }

    function showError(message) {
      errorMsg.replaceChildren(
        el("span", { class: "govuk-visually-hidden" }, "Error: "),
        document.createTextNode(message)
      );
      errorMsg.hidden = false;
      group.classList.add("govuk-form-group--error");
      input.classList.add("govuk-textarea--error");
      input.setAttribute("aria-describedby", ids.hint + " " + ids.error);
    }

    function clearError() {
      errorMsg.hidden = true;
      group.classList.remove("govuk-form-group--error");
      input.classList.remove("govuk-textarea--error");
      input.setAttribute("aria-describedby", ids.hint);
    }

    function updateControls() {
      stopBtn.hidden = !running;
      askBtn.setAttribute("aria-disabled", running ? "true" : "false");
      resetBtn.hidden = !state.turns.length || !!running;
      root.classList.toggle("govchat--busy", !!running);
    }

    function setOffline(offline) {
      if (offline) {
        notice.replaceChildren(
          el(
            "div",
            { class: "govuk-warning-text" },
            el("span", { class: "govuk-warning-text__icon", "aria-hidden": "true" }, "!"),
            el(
              "strong",
              { class: "govuk-warning-text__text" },
              el("span", { class: "govuk-visually-hidden" }, "Warning: "),
              TEXT.offlineNotice
            )
          )
        );
        notice.hidden = false;
      } else {
        notice.hidden = true;
        notice.replaceChildren();
      }
    }
    window.addEventListener("offline", () => setOffline(true));
    window.addEventListener("online", () => setOffline(false));
    if (navigator.onLine === false) setOffline(true);

    // --- one turn on screen

    function buildTurn(turn) {
      const qid = newId("q");
      const view = { turn };
      view.node = el("article", { class: "govchat__turn", "aria-labelledby": qid });
      view.question = el(
        h(1),
        { class: "govchat__question", id: qid, tabindex: "-1" },
        el("span", { class: "govuk-visually-hidden" }, TEXT.you + " "),
        turn.question
      );
      view.status = el("p", { class: "govuk-body-s govchat__status" });
      view.answer = el("div", { class: "govchat__answer" });
      view.sources = el("div", { class: "govchat__sources", hidden: true });
      view.actions = el("div", { class: "govchat__actions" });
      view.feedback = el("div", { class: "govchat__feedback" });
      view.node.append(
        view.question,
        view.status,
        view.answer,
        view.sources,
        view.actions,
        view.feedback
      );
      views.set(turn.id, view);
      log.append(view.node);
      paint(turn);
      return view;
    }

    function paintSources(view, turn) {
      const sources = turn.sources || [];
      if (!sources.length) {
        view.sources.hidden = true;
        view.sources.replaceChildren();
        return;
      }
      const final = turn.state !== "waiting" && turn.state !== "streaming";
      const list = el("ul", { class: "govuk-list govchat__source-list" });
      for (const s of sources) {
        const label = (s.title || s.url) + (s.heading ? ": " + s.heading : "");
        const href = safeHref(s.url, new Set());
        const item = el("li", null, href ? el("a", { class: "govuk-link", href }, label) : label);
        if (s.excerpt && !final) item.append(el("p", { class: "govchat__excerpt" }, s.excerpt));
        list.append(item);
      }
      view.sources.replaceChildren(
        el(h(2), { class: "govuk-heading-s govchat__sources-title" }, final ? TEXT.sources : TEXT.matched),
        list
      );
      view.sources.hidden = false;
    }

    function paintAnswer(view, turn) {
      const urls = (turn.sources || []).map((s) => s.url);
      const refused = turn.state === "refused";
      view.answer.className =
        "govchat__answer" + (refused ? " govuk-inset-text govchat__answer--refused" : "");
      const parts = [];
      if (refused && REFUSED_LABEL[turn.status]) {
        parts.push(el("p", { class: "govuk-body govchat__refused-label" }, el("strong", null, REFUSED_LABEL[turn.status])));
      }
      view.answer.replaceChildren(...parts, renderMarkdown(turn.message || "", urls));
    }

    function paint(turn) {
      const view = views.get(turn.id);
      if (!view) return;
      view.node.dataset.state = turn.state;
      const statusText = {
        waiting: TEXT.waiting,
        streaming: TEXT.streaming,
        stopped: TEXT.stopped,
        interrupted: TEXT.interrupted,
        error: turn.error || TEXT.error,
        offline: TEXT.offline,
        "rate-limited": turn.error,
      }[turn.state];
      view.status.replaceChildren();
      if (statusText) {
        if (turn.state === "waiting" || turn.state === "streaming") {
          view.status.append(el("span", { class: "govchat__spinner", "aria-hidden": "true" }));
        }
        view.status.append(statusText);
      }
      view.status.hidden = !statusText;
      view.status.classList.toggle(
        "govchat__status--problem",
        ["error", "offline", "rate-limited", "interrupted"].includes(turn.state)
      );
      paintAnswer(view, turn);
      paintSources(view, turn);
      view.actions.replaceChildren();
      if (["error", "offline", "rate-limited", "interrupted", "stopped"].includes(turn.state)) {
        view.actions.append(
          el(
            "button",
            {
              type: "button",
              class: "govuk-button govuk-button--secondary govchat__retry",
              onclick: () => retry(turn),
            },
            TEXT.retry,
            el("span", { class: "govuk-visually-hidden" }, ": " + turn.question)
          )
        );
      }
      paintFeedback(view, turn);
    }

    // --- feedback

    function paintFeedback(view, turn) {
      const box = view.feedback;
      if (!turn.answerId || !["answered", "refused"].includes(turn.state)) {
        box.replaceChildren();
        return;
      }
      const fb = turn.feedback || {};
      if (fb.detailSent) {
        box.replaceChildren(el("p", { class: "govuk-body-s govchat__thanks", tabindex: "-1" }, TEXT.sent));
        return;
      }
      if (fb.useful === undefined) {
        const legendId = newId("useful");
        box.replaceChildren(
          el(
            "div",
            { class: "govchat__useful", role: "group", "aria-labelledby": legendId },
            el("p", { class: "govuk-body-s govchat__useful-question", id: legendId }, TEXT.useful),
            el(
              "div",
              { class: "govuk-button-group" },
              el(
                "button",
                {
                  type: "button",
                  class: "govuk-button govuk-button--secondary govchat__useful-yes",
                  onclick: () => sendFeedback(turn, true),
                },
                TEXT.yes,
                el("span", { class: "govuk-visually-hidden" }, ", this answer was useful")
              ),
              el(
                "button",
                {
                  type: "button",
                  class: "govuk-button govuk-button--secondary govchat__useful-no",
                  onclick: () => sendFeedback(turn, false),
                },
                TEXT.no,
                el("span", { class: "govuk-visually-hidden" }, ", this answer was not useful")
              )
            )
          )
        );
        return;
      }
      const formId = newId("fb");
      const thanks = el("p", { class: "govuk-body-s govchat__thanks", tabindex: "-1" }, TEXT.thanks);
      const radios = el("div", { class: "govuk-radios govuk-radios--small" });
      REASONS[String(fb.useful)].forEach((reason, i) => {
        const id = `${formId}-r${i}`;
        radios.append(
          el(
            "div",
            { class: "govuk-radios__item" },
            el("input", { class: "govuk-radios__input", id, name: formId, type: "radio", value: reason }),
            el("label", { class: "govuk-label govuk-radios__label", for: id }, reason)
          )
        );
      });
      const commentId = `${formId}-comment`;
      const comment = el("textarea", {
        class: "govuk-textarea",
        id: commentId,
        rows: "2",
        maxlength: "2000",
      });
      const problem = el("p", { class: "govuk-error-message", hidden: true }, TEXT.feedbackError);
      const more = el(
        "form",
        {
          class: "govchat__reason",
          novalidate: true,
          onsubmit: async (ev) => {
            ev.preventDefault();
            const picked = radios.querySelector("input:checked");
            const ok = await postFeedback(turn, {
              useful: fb.useful,
              reason: picked ? picked.value : null,
              comment: comment.value.trim() || null,
            });
            if (!ok) {
              problem.hidden = false;
              return;
            }
            turn.feedback.detailSent = true;
            save();
            paintFeedback(view, turn);
            const done = view.feedback.querySelector(".govchat__thanks");
            if (done) done.focus();
            announce(TEXT.sent);
          },
        },
        el(
          "div",
          { class: "govuk-form-group" },
          el(
            "fieldset",
            { class: "govuk-fieldset" },
            el("legend", { class: "govuk-fieldset__legend govuk-fieldset__legend--s" }, TEXT.tellUs),
            radios
          )
        ),
        el(
          "div",
          { class: "govuk-form-group" },
          el("label", { class: "govuk-label", for: commentId }, TEXT.comment),
          comment
        ),
        problem,
        el("button", { type: "submit", class: "govuk-button govuk-button--secondary" }, TEXT.send)
      );
      box.replaceChildren(thanks, more);
    }

    async function postFeedback(turn, body) {
      try {
        const res = await fetch(`${API}/answers/${encodeURIComponent(turn.answerId)}/feedback`, {
          method: "POST",
          headers: headers("application/json"),
          body: JSON.stringify(body),
        });
        return res.ok;
      } catch (e) {
        return false;
      }
    }

    async function sendFeedback(turn, useful) {
      const ok = await postFeedback(turn, { useful });
      const view = views.get(turn.id);
      if (!ok) {
        view.feedback.append(el("p", { class: "govuk-error-message" }, TEXT.feedbackError));
        return;
      }
      turn.feedback = { useful };
      save();
      paintFeedback(view, turn);
      const thanks = view.feedback.querySelector(".govchat__thanks");
      if (thanks) thanks.focus();
      announce(TEXT.thanks);
    }

    // --- asking

    function headers(contentType) {
      const h = { Accept: contentType === "stream" ? "text/event-stream" : "application/json" };
      if (contentType) h["Content-Type"] = "application/json";
      if (data.apiKey) h["X-API-Key"] = data.apiKey;
      if (state.endUser) h["X-End-User-Id"] = state.endUser;
      return h;
    }

    function waitText(seconds) {
      const s = Math.max(1, parseInt(seconds || "60", 10) || 60);
      return s === 1 ? "1 second" : s < 120 ? `${s} seconds` : `${Math.ceil(s / 60)} minutes`;
    }

    async function ask(turn, isRetryOfNewConversation) {
      const controller = new AbortController();
      running = { turn, controller };
      updateControls();
      turn.state = "waiting";
      turn.message = "";
      turn.sources = [];
      turn.error = null;
      paint(turn);
      save();
      const conv = state.conversationId;
      const url = conv
        ? `${API}/conversations/${encodeURIComponent(conv)}/questions`
        : `${API}/conversations`;
      let lastSave = 0;
      let finished = false;
      try {
        if (navigator.onLine === false) throw new TypeError("offline");
        const res = await fetch(url, {
          method: "POST",
          headers: headers("stream"),
          body: JSON.stringify({ question: turn.question }),
          signal: controller.signal,
        });
        if (res.status === 404 && conv && !isRetryOfNewConversation) {
          state.conversationId = null; // expired or purged: carry on in a new conversation
          running = null;
          return ask(turn, true);
        }
        if (res.status === 429) {
          turn.state = "rate-limited";
          turn.error = TEXT.rateLimited(waitText(res.headers.get("Retry-After")));
        } else if (res.status === 409) {
          turn.state = "error";
          turn.error = TEXT.full;
        } else if (!res.ok || !res.body) {
          turn.state = "error";
          turn.error = TEXT.error;
        } else {
          let text = "";
          await readEvents(res.body, (event, raw) => {
            let payload;
            try {
              payload = JSON.parse(raw);
            } catch (e) {
              return;
            }
            if (event === "sources") {
              turn.sources = Array.isArray(payload.sources) ? payload.sources : [];
              turn.state = "streaming";
              paint(turn);
              announce(
                turn.sources.length
                  ? `Found ${turn.sources.length} GOV.UK section${turn.sources.length === 1 ? "" : "s"}. ${TEXT.streaming}`
                  : TEXT.streaming
              );
            } else if (event === "token" && typeof payload.text === "string") {
              text += payload.text;
              turn.message = text;
              if (turn.state === "waiting") turn.state = "streaming";
              const view = views.get(turn.id);
              view.node.dataset.state = turn.state;
              paintAnswer(view, turn);
              if (Date.now() - lastSave > 500) {
                lastSave = Date.now();
                save();
              }
            } else if (event === "done" && payload.answer) {
              finished = true;
              const a = payload.answer;
              state.conversationId = payload.conversation_id || state.conversationId;
              turn.answerId = a.id;
              turn.status = a.status;
              turn.message = a.message || "";
              turn.sources = Array.isArray(a.sources) ? a.sources : [];
              turn.state = a.status === "answered" ? "answered" : "refused";
            } else if (event === "error") {
              finished = true;
              turn.state = "error";
              turn.error = TEXT.error;
            }
          });
          if (!finished) {
            turn.state = "error";
            turn.error = TEXT.error;
          }
        }
      } catch (err) {
        if (err && err.name === "AbortError") {
          turn.state = "stopped";
        } else if (navigator.onLine === false || err instanceof TypeError) {
          turn.state = "offline";
        } else {
          turn.state = "error";
          turn.error = TEXT.error;
        }
      }
      running = null;
      paint(turn);
      save();
      updateControls();
      const view = views.get(turn.id);
      if (turn.state === "answered" || turn.state === "refused") {
        announce("Answer: " + view.answer.textContent.trim());
      } else {
        announce(view.status.textContent.trim());
      }
      if (document.activeElement === stopBtn || document.activeElement === document.body) {
        input.focus();
      }
    }

    function retry(turn) {
      if (running) {
        showError(TEXT.busy);
        return;
      }
      const view = views.get(turn.id);
      // Ask again as a new turn at the end: the old one stays as it was.
      view.node.remove();
      views.delete(turn.id);
      state.turns = state.turns.filter((t) => t !== turn);
      submit(turn.question);
    }

    function submit(question) {
      clearError();
      const q = question.trim();
      const problem = running
        ? TEXT.busy
        : !q
          ? TEXT.empty
          : q.length > maxChars
            ? TEXT.tooLong(maxChars)
            : null;
      if (problem) {
        showError(problem);
        input.focus();
        return;
      }
      const turn = { id: newId("turn"), question: q, state: "waiting", sources: [], message: "" };
      state.turns.push(turn);
      buildTurn(turn);
      input.value = "";
      input.focus();
      ask(turn, false);
    }

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit(input.value);
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit ? form.requestSubmit() : askBtn.click();
      }
    });
    stopBtn.addEventListener("click", () => {
      if (running) running.controller.abort();
      input.focus();
    });
    resetBtn.addEventListener("click", () => {
      if (running) return;
      state.conversationId = null;
      state.turns = [];
      views.clear();
      log.replaceChildren();
      save();
      updateControls();
      announce("New conversation started.");
      input.focus();
    });

    // Restore the conversation after a reload.
    for (const turn of state.turns) {
      if (turn.state === "waiting" || turn.state === "streaming") turn.state = "interrupted";
      buildTurn(turn);
    }
    save();
    updateControls();
    root.dataset.ready = "true";
  }

  function addStyles() {
    if (data.styles === "off" || document.querySelector("link[data-govchat-css]")) return;
    for (const href of ["vendor/govuk-frontend/govuk-frontend.min.css", "govchat.css"]) {
      document.head.append(el("link", { rel: "stylesheet", href: staticBase + href, "data-govchat-css": "" }));
    }
  }

  async function start() {
    addStyles();
    let config = {};
    try {
      const res = await fetch(apiBase + "/widget/config.json", { headers: { Accept: "application/json" } });
      if (res.ok) config = await res.json();
    } catch (e) {
      /* defaults below */
    }
    mount(config);
  }

  window.govchat = { renderMarkdown, readEvents };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
