// Signing with a certificate card, as agency pages use the HiPKI local component in current
// browsers: open its /popupForm window; it asks for the data with {"func": "getTbs"}, this page
// answers with the tbsPackage JSON (only to the component's own origin), it answers
// {"func": "sign", "signature", "ret_code"}. The signature goes into the form, which posts as
// usual. The PIN goes to the component only: its field has no name.
// Every form.card-sign of the page works so (the card sign-in, binding one's card, an online
// application, the weekly review, one form per week). A form's data-challenge-url answers
// {"nonce"} (a sign-in: the nonce is signed) or {"nonce", "tbs", "tbs_encoding"} (an online
// application or a review: the content given is signed). In the form: the PIN field
// (.card-pin, else #pin), the error box (.card-error, else #card-error); a message of
// #card-messages may be replaced for one form by its data-text-<name> attribute.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form.card-sign");
  if (!forms.length) { return; }
  var texts = document.getElementById("card-messages"), help = document.getElementById("component-help");
  var CODES = {1979711489: "no-card", 1979711490: "wrong-pin", 1979711492: "locked"};
  var active = null;  // the form being signed, while its component window is open

  function Signing(form) {
    var signer = form.getAttribute("data-signer").replace(/\/+$/, "");
    this.form = form;
    this.signer = signer;
    this.origin = new URL(signer).origin;
    this.signature = form.querySelector("input[name=signature]");
    this.button = form.querySelector("button[type=submit]");
    this.pin = form.querySelector(".card-pin") || document.getElementById("pin");
    this.errorBox = form.querySelector(".card-error") || document.getElementById("card-error");
    this.pkg = null;
    this.asking = null;
    this.timer = null;
    this.popup = null;
  }
  Signing.prototype.text = function (name) {
    return this.form.getAttribute("data-text-" + name) || (texts && texts.getAttribute("data-" + name)) || name;
  };
  Signing.prototype.done = function () {
    clearTimeout(this.timer);
    this.timer = null; this.pkg = null; this.asking = null; this.button.disabled = false;
    if (active === this) { active = null; }
  };
  Signing.prototype.fail = function (message, showHelp) {
    this.done();
    this.errorBox.textContent = message;
    this.errorBox.style.display = "block";
    if (showHelp && help) { help.classList.add("panel-warning"); help.scrollIntoView(); }
  };
  Signing.prototype.answer = function (source) { source.postMessage(JSON.stringify(this.pkg), this.origin); };
  Signing.prototype.closePopup = function () {
    try { this.popup.close(); } catch (e) { /* already closed */ }
  };
  Signing.prototype.received = function (event) {
    var data;
    try { data = typeof event.data === "string" ? JSON.parse(event.data) : event.data; } catch (e) { return; }
    if (!data || typeof data !== "object") { return; }
    if (data.func === "getTbs") {
      if (this.pkg) { this.answer(event.source); } else { this.asking = event.source; }
    } else if (data.func === "sign") {
      var code = Number(data.ret_code);
      if (code === 0 && data.signature) {
        this.done();
        this.button.disabled = true;
        this.signature.value = data.signature;
        this.form.submit();
      } else {
        this.fail(CODES[code] ? this.text(CODES[code])
                              : this.text("failed").replace("{code}", "0x" + code.toString(16)), false);
      }
    }
  };
  Signing.prototype.start = function (ev) {
    if (this.signature.value) { return; }  // signed: post the form
    ev.preventDefault();
    if (active) { return; }  // another form of the page is being signed
    this.errorBox.style.display = "none";
    var pin = this.pin.value, self = this;
    if (!pin) { this.fail(this.text("pin"), false); return; }
    // The window must open now, in the click; the content to sign arrives while it loads.
    this.popup = window.open(this.signer + "/popupForm", "hipki-signer", "width=420,height=240,left=80,top=40");
    if (!this.popup) { this.fail(this.text("popup"), true); return; }
    active = this;
    this.button.disabled = true;
    this.timer = setTimeout(function () { self.closePopup(); self.fail(self.text("timeout"), true); }, 10000);
    var csrf = this.form.querySelector("input[name=csrf_token]").value;
    fetch(this.form.getAttribute("data-challenge-url"), {
      method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf, "Accept": "application/json"}
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (challenge) {
      if (!self.timer) { return; }
      self.pkg = {func: "MakeSignature", signatureType: "PKCS7",
                  tbs: encodeURIComponent(challenge.tbs || challenge.nonce),
                  tbsEncoding: challenge.tbs ? (challenge.tbs_encoding || "NONE") : "NONE", hashAlgorithm: "SHA256",
                  withCardSN: "false", pin: encodeURIComponent(pin), nonce: challenge.nonce};
      if (self.asking) { self.answer(self.asking); self.asking = null; }
    }).catch(function () {
      self.closePopup();
      self.fail(self.text("server"), false);
    });
  };

  window.addEventListener("message", function (event) {
    if (!active || event.origin !== active.origin || !active.timer) { return; }
    active.received(event);
  });
  Array.prototype.forEach.call(forms, function (form) {
    var signing = new Signing(form);
    form.addEventListener("submit", function (ev) { signing.start(ev); });
  });
})();
