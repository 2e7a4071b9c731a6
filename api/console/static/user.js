// One user: their fields, and their image fetched with the token (an <img> cannot send
// one) and shown from a blob: URL, or a placeholder that says why there is none.
import { ApiError, el, getJson, request, sentence, showError } from "./common.js";

const article = document.getElementById("user");
const userId = article.dataset.userId;
const path = `/data/${encodeURIComponent(userId)}`;

function placeholder(text) {
  document.getElementById("picture").replaceChildren(
    el("div", { class: "placeholder", role: "img", "aria-label": text }, el("span", {}, "No image")),
    el("figcaption", {}, text),
  );
}

async function showImage(user) {
  if (!user.img_path) {
    placeholder("This user has no image.");
    return;
  }
  try {
    const blob = await (await request(`${path}/image`, { headers: { Accept: "image/png" } })).blob();
    const image = el("img", { src: URL.createObjectURL(blob), alt: `Image of user ${user.user_id}` });
    image.addEventListener("error", () => placeholder("The image could not be shown: the file is not a readable png."));
    document.getElementById("picture").replaceChildren(image, el("figcaption", {}, user.img_path));
  } catch (error) {
    placeholder(sentence(error, "Loading the image"));
  }
}

function showFields(user) {
  const fields = [
    ["User id", user.user_id],
    ["First name", user.first_name],
    ["Last name", user.last_name],
    ["Born", user.birthdate],
    ["Age", user.age],
    ["Birth time (ms since 1970, UTC)", user.birthts],
    ["Image", user.img_path || "none"],
  ];
  document.getElementById("fields").replaceChildren(
    ...fields.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", {}, value))),
  );
  document.getElementById("user-heading").textContent = `${user.first_name} ${user.last_name}`;
  document.title = `${user.first_name} ${user.last_name} · zipflow`;
}

async function show() {
  document.getElementById("source-user").href = path;
  try {
    const user = await getJson(path);
    showFields(user);
    await showImage(user);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      document.getElementById("user-heading").textContent = "No such user";
      document.title = "No such user · zipflow";
      article.querySelector(".user").replaceChildren(
        el("p", { class: "error", role: "alert" }, `There is no user with the id “${userId}”.`),
      );
      return;
    }
    showError(article.querySelector(".user"), error, "Loading the user");
  }
}

show();
