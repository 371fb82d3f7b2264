// The operator's branding (the signaling server's --branding file, served as /branding.json): product name,
// colours, logo and consent wording. Text is set with textContent, colours only when they are #rrggbb (the server
// checks them too). Without a branding file the server serves peerdesk's own.

export const branding = {
  product_name: "peerdesk",
  consent_text: "{name} asks to see your screen. Allow (view only)?",
};

const COLOR = /^#[0-9a-fA-F]{6}$/;

/** Fetches and applies the branding; resolves with it (peerdesk's own when none is served). */
export async function applyBranding(suffix) {
  try {
    const response = await fetch("/branding.json", { cache: "no-store" });
    if (response.ok) Object.assign(branding, await response.json());
  } catch {
    // Keep the defaults.
  }
  document.title = `${branding.product_name} — ${suffix}`;
  const heading = document.querySelector("h1");
  if (heading) heading.textContent = branding.product_name;
  const root = document.documentElement.style;
  if (COLOR.test(branding.accent_color || "")) root.setProperty("--accent", branding.accent_color);
  if (COLOR.test(branding.background_color || "")) root.setProperty("--background", branding.background_color);
  const logo = document.getElementById("logo");
  if (logo && branding.has_logo) {
    logo.src = "/branding/logo.png";
    logo.alt = branding.product_name;
    logo.hidden = false;
  }
  document.documentElement.dataset.branded = "1";
  return branding;
}
