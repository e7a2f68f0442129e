// Chat's "Compare" link takes what is typed in the composer to the arena (the arena page fills it in).
const link = document.getElementById("compare-link");
const input = document.getElementById("composer-input");
if (link && input) {
  link.addEventListener("click", () => {
    const text = input.value.trim();
    const url = new URL(link.href, window.location.href);
    if (text) url.searchParams.set("prompt", text.slice(0, 8000)); else url.searchParams.delete("prompt");
    link.href = url.toString();
  });
}
