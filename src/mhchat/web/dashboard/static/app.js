// Live chat page: the feed (server-sent events), panel refreshes and forms posted in place.
// No inline scripts (the page's Content-Security-Policy forbids them); text goes in with
// textContent only.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const groups = document.getElementById("feed-groups");
  const status = document.getElementById("feed-status");
  const notice = document.getElementById("notice");
  const MAX_POSTS = 600;
  const PLATFORMS = { x: "X", bluesky: "Bluesky", facebook: "Facebook", fake: "Test" };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function badge(platform) {
    return el("span", "badge platform-" + platform, PLATFORMS[platform] || platform);
  }

  function groupKey(post) {
    return post.question === null || post.question === undefined
      ? "other"
      : (post.session || "") + "/" + post.question;
  }

  function groupOrder(key) {
    if (key === "other") return "~";
    const parts = key.split("/");
    return parts[0] + "/" + String(parts[1]).padStart(4, "0");
  }

  function questionTitle(post) {
    const label = "Q" + post.question;
    const text = post.question_text || "";
    // The host's questions usually start with their own "Q2:" label already.
    if (!text) return label;
    return text.toUpperCase().startsWith(label.toUpperCase()) ? text : label + ": " + text;
  }

  function findGroup(post) {
    const key = groupKey(post);
    let group = groups.querySelector('section[data-group="' + CSS.escape(key) + '"]');
    if (group) {
      if (post.question_text) {
        group.querySelector("h3").textContent = questionTitle(post);
      }
      return group;
    }
    group = el("section", "qgroup");
    group.dataset.group = key;
    const title = key === "other" ? "Other posts" : questionTitle(post);
    group.append(el("h3", "", title), el("div", "threads"));
    const order = groupOrder(key);
    const after = Array.from(groups.children).find((g) => groupOrder(g.dataset.group) > order);
    groups.insertBefore(group, after || null);
    return group;
  }

  function findThread(post) {
    const group = findGroup(post);
    let thread = group.querySelector('article[data-thread="' + CSS.escape(post.thread) + '"]');
    if (!thread) {
      const existing = groups.querySelector('article[data-thread="' + CSS.escape(post.thread) + '"]');
      if (existing && !post.is_reply) {
        // A root post arriving after its replies moved the thread to its question: follow it.
        group.querySelector(".threads").append(existing);
        return existing;
      }
      if (existing) return existing;
      thread = el("article", "thread");
      thread.dataset.thread = post.thread;
      const head = el("p", "thread-head");
      head.append(badge(post.platform), document.createTextNode(" thread"));
      thread.append(head, el("ol", "posts"));
      group.querySelector(".threads").append(thread);
    }
    return thread;
  }

  function renderPost(post) {
    const li = el("li", "post" + (post.is_reply ? " reply" : "") + (post.own ? " own" : ""));
    li.dataset.post = post.platform + ":" + post.remote_id;
    const head = el("p", "post-head");
    head.append(badge(post.platform), document.createTextNode(" "), el("strong", "author", post.author));
    if (post.own) head.append(document.createTextNode(" "), el("span", "badge host", "Host"));
    if (post.first_timer) head.append(document.createTextNode(" "), el("span", "badge first", "First time"));
    if (post.triage && post.triage !== "ok") {
      head.append(document.createTextNode(" "), el("span", "badge cat-" + post.triage, post.triage));
    }
    const time = el("time", "muted", post.created_at.slice(11, 16) + " UTC");
    time.dateTime = post.created_at;
    head.append(document.createTextNode(" "), time);
    li.append(head, el("p", "post-text", post.text));
    if (post.note) li.append(el("p", "note", post.note));
    if (post.decisions && post.decisions.length) {
      const list = el("ul", "post-decisions");
      post.decisions.forEach((d) => {
        const item = el("li");
        item.append(el("span", "badge", d.purpose), document.createTextNode(" "));
        item.append(el("span", "state state-" + d.state, d.state.replace(/_/g, " ")));
        item.append(document.createTextNode(" " + d.reason));
        list.append(item);
      });
      li.append(list);
    }
    return li;
  }

  function upsert(post) {
    const id = post.platform + ":" + post.remote_id;
    const old = groups.querySelector('li[data-post="' + CSS.escape(id) + '"]');
    const node = renderPost(post);
    if (old) {
      old.replaceWith(node);
    } else {
      findThread(post).querySelector("ol").append(node);
    }
    const all = groups.querySelectorAll("li.post");
    for (let i = 0; i < all.length - MAX_POSTS; i++) remove(all[i]);
  }

  function remove(li) {
    const thread = li.closest("article");
    li.remove();
    if (thread && !thread.querySelector("li.post")) {
      const group = thread.closest("section");
      thread.remove();
      if (group && !group.querySelector("article")) group.remove();
    }
  }

  async function loadFeed() {
    const resp = await fetch("/dashboard/api/feed", { headers: { Accept: "application/json" } });
    if (resp.status === 401) { window.location.assign("/dashboard/login"); return; }
    const data = await resp.json();
    groups.replaceChildren();
    data.posts.forEach(upsert);
  }

  let refreshing = null;
  async function refreshPanels() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      const resp = await fetch("/dashboard/api/panels", { headers: { Accept: "application/json" } });
      if (resp.status === 401) { window.location.assign("/dashboard/login"); return; }
      const data = await resp.json();
      Object.entries(data.panels).forEach(([key, html]) => swapPanel(key, html));
      Object.entries(data.counts).forEach(([key, n]) => {
        const count = document.querySelector('[data-count="' + key + '"]');
        if (count) count.textContent = String(n);
      });
    })();
    try { await refreshing; } finally { refreshing = null; }
  }

  function swapPanel(key, html) {
    const panel = document.querySelector('[data-panel="' + key + '"]');
    if (!panel) return;
    // Keep what a facilitator is typing, and where their keyboard focus is.
    const kept = {};
    panel.querySelectorAll("textarea[data-dirty]").forEach((t) => { kept[t.dataset.keep] = t.value; });
    const focused = panel.contains(document.activeElement) && document.activeElement.id
      ? document.activeElement.id : null;
    const opened = Array.from(panel.querySelectorAll("details[open]")).map((d) => d.className);
    const parsed = new DOMParser().parseFromString(html, "text/html");
    panel.replaceChildren(...parsed.body.childNodes);
    panel.querySelectorAll("details").forEach((d) => {
      if (opened.includes(d.className)) d.open = true;
    });
    panel.querySelectorAll("textarea[data-keep]").forEach((t) => {
      if (kept[t.dataset.keep] !== undefined) { t.value = kept[t.dataset.keep]; t.dataset.dirty = "1"; }
    });
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
  }

  function say(message, bad) {
    notice.textContent = message;
    notice.hidden = false;
    notice.classList.toggle("error", Boolean(bad));
  }

  document.addEventListener("input", (event) => {
    if (event.target.matches("textarea[data-keep]")) event.target.dataset.dirty = "1";
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList.contains("js-post")) return;
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        credentials: "same-origin",
      });
      if (resp.status === 401) { window.location.assign("/dashboard/login"); return; }
      let message = "Done.";
      let ok = resp.ok;
      try { const data = await resp.json(); message = data.message; ok = data.ok; } catch (e) { message = await resp.text(); }
      say(message, !ok);
      const hadFocus = form.contains(document.activeElement);
      await refreshPanels();
      // The form may be gone (the item was handled): keep the keyboard in a known place.
      if (hadFocus && !document.body.contains(form)) notice.focus();
    } catch (err) {
      say("The dashboard could not reach the service: try again.", true);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  function connect() {
    const source = new EventSource("/dashboard/events");
    source.addEventListener("hello", () => {
      status.textContent = "Live: new posts appear as they arrive.";
      loadFeed().catch(() => {});
      refreshPanels().catch(() => {});
    });
    source.addEventListener("post", (event) => upsert(JSON.parse(event.data)));
    source.addEventListener("deleted", (event) => {
      const gone = JSON.parse(event.data);
      const li = groups.querySelector('li[data-post="' + CSS.escape(gone.platform + ":" + gone.remote_id) + '"]');
      if (li) remove(li);
    });
    source.addEventListener("panels", () => { refreshPanels().catch(() => {}); });
    source.onerror = () => { status.textContent = "Reconnecting to the live feed…"; };
  }

  connect();
})();
