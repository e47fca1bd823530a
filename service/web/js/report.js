// The words around the plots: every warning (outside the training domain prominently), and how A and B differ.

const DOMAIN = new Set(["family_unseen", "feature_out_of_range"]); // the design itself lies outside the zoo
const FOLDED = 6; // warnings of that list shown before "Show all" (style.css hides the rest: keep the two equal)

function items(list, texts) {
  list.replaceChildren(
    ...texts.map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
}

// Where the BOS massive-activation mechanism is predicted to form (the response's "mechanism" sentence).
export function mechanism(b, a) {
  const line = (result, tag) => {
    const found = (result?.summary || []).find((s) => s.metric === "mechanism");
    return found ? `${tag}: ${found.text.replace(/^mechanism: /, "")}` : "";
  };
  const text = [line(b, "B"), a ? line(a, "A") : ""].filter(Boolean).join(" · ");
  const node = document.getElementById("mechanism");
  node.textContent = text ? `Where the BOS mechanism forms — ${text}` : "";
  node.hidden = !text;
}

export function warnings(b, a) {
  const outside = b.warnings.filter((w) => DOMAIN.has(w.code));
  const other = b.warnings.filter((w) => !DOMAIN.has(w.code));
  document.getElementById("domain").hidden = outside.length === 0;
  const list = document.getElementById("domain-list");
  items(list, outside.map((w) => w.message));
  const more = document.getElementById("domain-more");
  more.hidden = outside.length <= FOLDED;
  more.textContent = list.classList.contains("folded") ? `Show all ${outside.length}` : "Show fewer";
  const aOutside = a ? a.warnings.filter((w) => DOMAIN.has(w.code)).length : 0;
  const aNote = document.getElementById("domain-a");
  aNote.hidden = aOutside === 0;
  aNote.textContent = `Pinned design A is outside the training domain too (${aOutside} warnings).`;
  document.getElementById("notes").hidden = other.length === 0;
  items(document.getElementById("notes-list"), other.map((w) => w.message));
}

// A long list is folded to its first FOLDED warnings so that the curves stay in view; a button unfolds it.
export function toggleDomain() {
  const list = document.getElementById("domain-list");
  const more = document.getElementById("domain-more");
  const folded = list.classList.toggle("folded");
  more.setAttribute("aria-expanded", String(!folded));
  more.textContent = folded ? `Show all ${list.children.length}` : "Show fewer";
}

const show = (value) => (value === undefined ? "(unset)" : JSON.stringify(value));

export function differences(list) {
  items(
    document.getElementById("differences"),
    list.map((d) => `${d.key}: A ${show(d.a)} → B ${show(d.b)}`),
  );
}
