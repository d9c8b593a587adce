// Signing a one-time challenge with a certificate card, as agency pages use the HiPKI local
// component in current browsers: open its /popupForm window; it asks for the data with
// {"func": "getTbs"}, this page answers with the tbsPackage JSON (only to the component's own
// origin), it answers {"func": "sign", "signature", "ret_code"}. The signature goes into the
// form, which posts as usual. The PIN goes to the component only: its field has no name.
// The page's data-challenge-url answers {"nonce"} (a sign-in: the nonce is signed) or
// {"nonce", "tbs", "tbs_encoding"} (an online application: its canonical content is signed).
(function () {
  "use strict";
  var form = document.querySelector("form.card-sign");
  if (!form) { return; }
  var signer = form.getAttribute("data-signer").replace(/\/+$/, "");
  var signerOrigin = new URL(signer).origin;
  var texts = document.getElementById("card-messages");
  var errorBox = document.getElementById("card-error"), help = document.getElementById("component-help");
  var signatureField = form.querySelector("input[name=signature]");
  var button = form.querySelector("button[type=submit]");
  var CODES = {1979711489: "no-card", 1979711490: "wrong-pin", 1979711492: "locked"};
  var pkg = null, asking = null, timer = null, popup = null;

  function text(name) { return texts.getAttribute("data-" + name) || name; }
  function done() { clearTimeout(timer); timer = null; pkg = null; asking = null; button.disabled = false; }
  function fail(message, showHelp) {
    done();
    errorBox.textContent = message;
    errorBox.style.display = "block";
    if (showHelp && help) { help.classList.add("panel-warning"); help.scrollIntoView(); }
  }
  function answer(source) { source.postMessage(JSON.stringify(pkg), signerOrigin); }

  window.addEventListener("message", function (event) {
    if (event.origin !== signerOrigin || !timer) { return; }
    var data;
    try { data = typeof event.data === "string" ? JSON.parse(event.data) : event.data; } catch (e) { return; }
    if (!data || typeof data !== "object") { return; }
    if (data.func === "getTbs") {
      if (pkg) { answer(event.source); } else { asking = event.source; }
    } else if (data.func === "sign") {
      var code = Number(data.ret_code);
      if (code === 0 && data.signature) {
        done();
        button.disabled = true;
        signatureField.value = data.signature;
        form.submit();
      } else {
        fail(CODES[code] ? text(CODES[code]) : text("failed").replace("{code}", "0x" + code.toString(16)), false);
      }
    }
  });

  form.addEventListener("submit", function (ev) {
    if (signatureField.value) { return; }  // signed: post the form
    ev.preventDefault();
    errorBox.style.display = "none";
    var pin = document.getElementById("pin").value;
    if (!pin) { fail(text("pin"), false); return; }
    // The window must open now, in the click; the challenge arrives while it loads.
    popup = window.open(signer + "/popupForm", "hipki-signer", "width=420,height=240,left=80,top=40");
    if (!popup) { fail(text("popup"), true); return; }
    button.disabled = true;
    timer = setTimeout(function () {
      try { popup.close(); } catch (e) { /* already closed */ }
      fail(text("timeout"), true);
    }, 10000);
    var csrf = form.querySelector("input[name=csrf_token]").value;
    fetch(form.getAttribute("data-challenge-url"), {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf, "Accept": "application/json"}
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (challenge) {
      if (!timer) { return; }
      pkg = {func: "MakeSignature", signatureType: "PKCS7", tbs: encodeURIComponent(challenge.tbs || challenge.nonce),
             tbsEncoding: challenge.tbs ? (challenge.tbs_encoding || "NONE") : "NONE", hashAlgorithm: "SHA256",
             withCardSN: "false",
             pin: encodeURIComponent(pin), nonce: challenge.nonce};
      if (asking) { answer(asking); asking = null; }
    }).catch(function () {
      try { popup.close(); } catch (e) { /* already closed */ }
      fail(text("server"), false);
    });
  });
})();
