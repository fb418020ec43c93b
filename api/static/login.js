// Log in, then go back where the user came from or to the home of their role.
"use strict";

const WORDS = {
  en: { username: "User name", password: "Password", bad: "Wrong user name or password.",
    too_many: "Too many failed logins: try again in {m} min." },
  vi: { username: "Tên đăng nhập", password: "Mật khẩu", bad: "Sai tên đăng nhập hoặc mật khẩu.",
    too_many: "Đăng nhập sai quá nhiều lần: hãy thử lại sau {m} phút." },
};
CS.init({ page: "login", words: WORDS });
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  try {
    // JSON only: the API refuses form posts, so no other site can log a browser in.
    const session = await CS.api("/api/v1/auth/login", { method: "POST", redirect: false, body: {
      username: document.getElementById("username").value.trim(), password: document.getElementById("password").value } });
    // Back where a page sent the user to log in, else to the home of their role.
    const next = new URLSearchParams(location.search).get("next");
    location.href = CS.sameOriginPath(next, CS.home(session.role));
  } catch (err) {
    if (err.status === 401) message.textContent = CS.t("bad");
    else if (err.status === 429) message.textContent = CS.t("too_many").replace("{m}", Math.max(1, Math.ceil((err.retryAfter || 60) / 60)));
    else message.textContent = `${CS.t("error")}: ${err.message}`;
  }
});
