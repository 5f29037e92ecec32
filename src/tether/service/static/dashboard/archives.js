// dashboard/archives.js: the dashboard's Archives card. A user's archived dialogs, listed
// with GET /api/v1/users/{user}/archives and shown as their YAML document with
// GET .../{archive_id}?format=yaml, both with the admin token. The archives come from
// wherever the server keeps them (YAML files, or PostgreSQL shared by every node), so any
// node shows every archive when TETHER_ARCHIVE_URL is set.

const REASON_RECOVERED = "recovered";

function cell(tr, value) {
  const td = document.createElement("td");
  td.textContent = value;
  tr.append(td);
  return td;
}

function lasted(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
}

/**
 * Wire the Archives card.
 * @param {{base: string, token: () => string | null, onAuthLost: () => void,
 *          $: (id: string) => HTMLElement}} env
 */
export function setupArchives({ base, token, onAuthLost, $ }) {
  const status = $("archives-status");
  const body = $("archives").querySelector("tbody");
  const shown = $("archive-yaml");

  function say(message, error = false) {
    status.textContent = message;
    status.className = error ? "error" : "muted";
  }

  async function get(path) {
    let response;
    try {
      response = await fetch(new URL(path, base), {
        headers: { Authorization: `Bearer ${token()}` },
        cache: "no-store",
      });
    } catch (exc) {
      say(`Could not reach the server: ${exc.message}`, true);
      return null;
    }
    if (response.status === 401 || response.status === 403) {
      onAuthLost();
      return null;
    }
    if (!response.ok) {
      const answer = await response.json().catch(() => null);
      say(answer?.error?.message ?? `HTTP ${response.status}`, true);
      return null;
    }
    return response;
  }

  async function show(user, archiveId) {
    const path = `api/v1/users/${encodeURIComponent(user)}/archives/${encodeURIComponent(archiveId)}?format=yaml`;
    const response = await get(path);
    if (!response) return;
    shown.textContent = await response.text();
    shown.hidden = false;
    shown.dataset.archiveId = archiveId;
    say(`${user} · ${archiveId}`);
  }

  async function list(user) {
    body.replaceChildren();
    shown.hidden = true;
    shown.textContent = "";
    const response = await get(`api/v1/users/${encodeURIComponent(user)}/archives?limit=100`);
    if (!response) return;
    const { archives } = await response.json();
    if (archives.length === 0) {
      say(`No archived dialogs for ${user}.`);
      return;
    }
    say(`${archives.length} archived dialog${archives.length === 1 ? "" : "s"} of ${user}, newest first.`);
    for (const a of archives) {
      const tr = document.createElement("tr");
      const link = document.createElement("button");
      link.type = "button";
      link.className = "link";
      link.textContent = a.archive_id;
      link.addEventListener("click", () => show(user, a.archive_id));
      cell(tr, "").append(link);
      cell(tr, a.kind);
      cell(tr, new Date(a.started_at * 1000).toLocaleString());
      cell(tr, lasted(a.duration_s));
      cell(tr, String(a.message_count));
      cell(tr, a.recovered ? REASON_RECOVERED : a.end_reason);
      body.append(tr);
    }
  }

  $("archives-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("archives-user").value.trim();
    if (user) list(user);
  });
}
