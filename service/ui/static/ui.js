// Progressive enhancement only: every page works without this script.
// A "Copy" button copies the value of the element named in its data-copy attribute.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.querySelector(".copy-status");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = "Copied to the clipboard.";
  } catch (error) {
    if (status) status.textContent = "Select the token and copy it yourself (Ctrl+C).";
  }
});

