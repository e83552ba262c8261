// The dnh page: send the chosen image to POST /search, show its top k, open an item's details.
"use strict";

const $ = (id) => document.getElementById(id);
const SHOWN = ["rank", "distance", "id", "source", "organ", "disease"];

async function answer(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw body;
  return body;
}

function showError(problem) {
  const box = $("error");
  box.textContent = problem.error + (problem.hint ? ` (${problem.hint})` : "");
  box.hidden = false;
}

async function refreshStatus() {
  try {
    const h = await answer(await fetch("/health"));
    $("status").textContent = `${h.count.toLocaleString()} images · ${h.bits}-bit codes · model ${String(h.model_fingerprint).slice(0, 12)}`
      + (h.reload_error ? ` · database not reloaded: ${h.reload_error}` : "");
  } catch (problem) {
    $("status").textContent = "the service does not answer";
  }
}

function card(hit) {
  const item = document.createElement("li");
  item.className = "result";
  item.tabIndex = 0;
  item.dataset.id = hit.id;
  const img = document.createElement("img");
  img.alt = `item ${hit.id}`;
  img.loading = "lazy";
  img.src = `/items/${hit.id}/thumbnail.png`;
  img.onerror = () => { img.removeAttribute("src"); img.alt = "image not available"; };
  const rank = document.createElement("div");
  rank.className = "rank";
  rank.textContent = `#${hit.rank}`;
  const distance = document.createElement("span");
  distance.textContent = hit.score === null || hit.score === undefined
    ? `distance ${hit.distance}` : `likeness ${hit.score.toFixed(3)} · distance ${hit.distance}`;
  rank.append(distance);
  const organ = document.createElement("div");
  organ.className = "organ";
  organ.textContent = hit.organ ?? "";
  const disease = document.createElement("div");
  disease.className = "disease";
  disease.textContent = hit.disease ?? "";
  item.append(img, rank, organ, disease);
  item.title = hit.source ?? "";
  item.onclick = () => openDetails(hit.id);
  item.onkeydown = (event) => { if (event.key === "Enter") openDetails(hit.id); };
  return item;
}

async function openDetails(id) {
  try {
    const meta = await answer(await fetch(`/items/${id}`));
    $("details-image").src = `/items/${id}/thumbnail.png?size=224`;
    $("details-image").alt = `item ${id}`;
    const table = $("details-table");
    table.replaceChildren();
    const keys = [...SHOWN.filter((k) => k in meta), ...Object.keys(meta).filter((k) => !SHOWN.includes(k))];
    for (const key of keys) {
      const row = table.insertRow();
      row.insertCell().textContent = key;
      const value = meta[key];
      row.insertCell().textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    }
    $("details").showModal();
  } catch (problem) {
    showError(problem);
  }
}

async function search(file) {
  $("error").hidden = true;
  $("summary").textContent = `searching for ${file.name}…`;
  const params = new URLSearchParams({ k: $("k").value || "10", preview: "true" });
  if ($("radius").value !== "") params.set("radius", $("radius").value);
  const form = new FormData();
  form.append("image", file, file.name);
  const began = performance.now();
  try {
    const result = await answer(await fetch(`/search?${params}`, { method: "POST", body: form }));
    $("preview-image").src = result.preview;
    $("preview-name").textContent = result.query;
    $("preview").hidden = false;
    $("results").replaceChildren(...result.results.map(card));
    const ms = Math.round(performance.now() - began);
    $("summary").textContent = result.results.length
      ? `${result.results.length} most similar images to ${result.query} (${ms} ms)`
      : `no stored image within distance ${$("radius").value} of ${result.query}`;
  } catch (problem) {
    $("results").replaceChildren();
    $("summary").textContent = "";
    showError(problem);
  }
}

function setUp() {
  const drop = $("drop");
  let chosen = null;
  $("file").onchange = () => { chosen = $("file").files[0]; if (chosen) search(chosen); };
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    chosen = event.dataTransfer.files[0];
    if (chosen) search(chosen);
  });
  $("options").onchange = () => { if (chosen) search(chosen); };
  $("options").onsubmit = (event) => { event.preventDefault(); if (chosen) search(chosen); };
  refreshStatus();
  setInterval(refreshStatus, 10000);
}

setUp();
