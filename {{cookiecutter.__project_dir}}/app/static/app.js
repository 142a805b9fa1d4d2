// The page only talks to this app's JSON API (docs/api.md: "API contract"); the user comes from the Apps proxy.
// A file of its own, not inline: the Content-Security-Policy allows scripts from this app only.
const list = document.getElementById("items");
const error = document.getElementById("error");
const empty = document.getElementById("empty");
const readable = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    const detail = await response.json().catch(() => ({}));
    throw new Error(detail.error || response.statusText);  // {"error": ..., "field": ...}
  }
  return response.status === 204 ? null : response.json();
}

function row(item) {
  const li = document.createElement("li");
  li.className = item.done ? "done" : "";
  const label = document.createElement("label");
  const done = document.createElement("input");
  done.type = "checkbox";
  done.checked = item.done;
  done.onchange = () => run(() => call("PUT", `/api/items/${item.id}`, { title: item.title, done: done.checked }));
  const title = document.createElement("span");
  title.className = "title";
  title.textContent = item.title;  // text, never HTML
  label.append(done, title);
  const when = document.createElement("time");
  when.className = "when";
  when.dateTime = item.updated_at;
  when.textContent = readable.format(new Date(item.updated_at));
  const remove = document.createElement("button");
  remove.textContent = "Delete";
  remove.onclick = () => run(() => call("DELETE", `/api/items/${item.id}`));
  li.append(label, when, remove);
  return li;
}

async function refresh() {
  const items = [];  // every page: the API answers at most 100 items at a time (docs/api.md: API contract)
  for (let page = null; page === null || page.length === 100; items.push(...page)) {
    page = await call("GET", items.length ? `/api/items?after=${items[items.length - 1].id}` : "/api/items");
  }
  list.replaceChildren(...items.map(row));
  empty.hidden = items.length > 0;
}

async function run(action) {
  try {
    error.textContent = "";
    await action();
    await refresh();
  } catch (e) {
    error.textContent = e.message;
  }
}

document.getElementById("new-item").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("title");
  run(async () => { await call("POST", "/api/items", { title: input.value }); input.value = ""; });
};
run(async () => {
  document.getElementById("who").textContent = `Signed in as ${(await call("GET", "/api/me")).email}`;
});
