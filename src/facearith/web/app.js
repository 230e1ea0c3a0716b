// The page asks the service's JSON API (/api/...) and shows its answers; nothing is fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { gallery: null, source: null };  // source: {row} of a gallery image or {file} of an upload

function say(text) { $("message").textContent = text || ""; }

async function ask(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function thumbnail(row) { return `/api/thumbnail?row=${row}`; }

function showResults(answer, want) {
  // want: {person, expression}, either may be undefined when it is not known (an upload's person)
  const q = answer.query;
  $("asked").textContent = q.person ? `${q.person} + ${q.expression}`
    : `${q.image.split("/").pop()}: -${q.minus}${q.minus_inferred ? " (inferred)" : ""} +${q.plus}`;
  const list = $("results");
  list.replaceChildren();
  for (const r of answer.results) {
    const row = state.gallery.rows[r.path];
    const li = document.createElement("li");
    li.dataset.person = r.person;
    li.dataset.expression = r.expression;
    li.dataset.row = row;
    const known = want.person !== undefined && want.expression !== undefined;
    if (known) li.className = r.person === want.person && r.expression === want.expression ? "hit" : "miss";
    li.title = "click: this face, but ...";
    li.innerHTML = `<img alt="${r.person} ${r.expression}" src="${thumbnail(row)}">` +
      `<div>${r.rank}. ${r.person} ${r.expression}</div>` +
      `<div class="split-${r.split}">${r.split}</div><div>${r.distance.toFixed(3)}</div>`;
    li.addEventListener("click", () => chooseRow(row));
    list.appendChild(li);
  }
}

async function compose(person, expression, button) {
  document.querySelectorAll("td button.asked").forEach((b) => b.classList.remove("asked"));
  button.classList.add("asked");
  say("");
  try {
    const answer = await ask(`/api/compose?person=${encodeURIComponent(person)}` +
                             `&expression=${encodeURIComponent(expression)}&k=5`);
    showResults(answer, { person, expression });
  } catch (error) { say(error.message); }
}

function chooseRow(row) {
  const image = state.gallery.images[row];
  state.source = { row, person: image.person };
  $("upload").value = "";
  $("source").src = thumbnail(row);
  $("source").hidden = false;
  $("source-label").textContent = `${image.person} ${image.expression} (${image.split})`;
  $("transfer").disabled = false;
}

function chooseFile(file) {
  if (!file) return;
  state.source = { file };
  $("source").src = URL.createObjectURL(file);
  $("source").hidden = false;
  $("source-label").textContent = file.name;
  $("transfer").disabled = false;
}

async function transfer() {
  const plus = $("target").value;
  say("");
  try {
    let answer;
    if (state.source.file) {
      const form = new FormData();
      form.append("image", state.source.file, state.source.file.name);
      form.append("plus", plus);
      form.append("k", "5");
      answer = await ask("/api/transfer", { method: "POST", body: form });
    } else {
      answer = await ask(`/api/transfer?row=${state.source.row}&plus=${encodeURIComponent(plus)}&k=5`);
    }
    showResults(answer, { person: state.source.person, expression: state.source.person && plus });
  } catch (error) { say(error.message); }
}

function drawGallery(g) {
  const table = $("gallery");
  const head = document.createElement("tr");
  head.innerHTML = "<th></th>" + g.expressions.map((e) => `<th>${e}</th>`).join("");
  table.appendChild(head);
  for (const p of g.persons) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<th>${p}</th>`;
    for (const e of g.expressions) {
      const td = document.createElement("td");
      const row = g.cells[`${p} ${e}`];
      if (row !== undefined) {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.person = p;
        b.dataset.expression = e;
        b.title = `${p} + ${e}`;
        b.innerHTML = `<img alt="${p} ${e}" src="${thumbnail(row)}">`;
        b.addEventListener("click", () => compose(p, e, b));
        td.appendChild(b);
      }
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  $("target").innerHTML = g.expressions.map((e) => `<option>${e}</option>`).join("");
}

async function main() {
  const g = await ask("/api/gallery");
  g.rows = Object.fromEntries(g.images.map((i) => [i.path, i.row]));
  state.gallery = g;
  drawGallery(g);
  $("upload").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  $("source").addEventListener("error", () => { $("source").hidden = true; });  // e.g. a TIFF, which browsers do not show
  $("transfer").addEventListener("click", transfer);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  document.body.dataset.ready = "true";
}

main().catch((error) => say(error.message));
