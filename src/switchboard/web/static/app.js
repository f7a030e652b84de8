// @ts-check
/**
 * The call page served at `/`: sign in, join one or several calls, see who is there and who is
 * speaking, mute/unmute, switch focus between calls, put a call on hold, set each call's volume and
 * side, whisper to one participant, ring someone, answer rings.
 *
 * URL parameters fill the sign-in form:
 * `?user=alice&token=...&policy=suspend_incoming&suspend=ducked&autologin=1`.
 * The page exposes `window.switchboardPage = {client, sdk}` for scripting and tests.
 */

import * as sdk from "/sdk/switchboard.js";

const SPEAKING_DBFS = -50;
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/** @type {sdk.VideoClient | null} */
let client = null;
/** @type {{api_key: string, development_tokens: boolean}} */
let config = { api_key: "", development_tokens: false };

/** @param {unknown} err */
function showError(err) {
  const box = $("error");
  box.textContent = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  box.hidden = false;
}

/** @param {() => Promise<unknown>} fn */
async function guarded(fn) {
  $("error").hidden = true;
  try {
    await fn();
  } catch (err) {
    showError(err);
  }
}

async function loadConfig() {
  config = await (await fetch("/web/config.json")).json();
  $("dev-note").hidden = !config.development_tokens;
  $("token-label").hidden = config.development_tokens;
}

/**
 * @param {string} userId
 * @param {string} token
 * @param {string} policy
 * @param {string} suspendMode
 */
async function signIn(userId, token, policy, suspendMode) {
  if (config.development_tokens && !token) {
    const response = await fetch("/dev/token", { method: "POST", body: JSON.stringify({ user_id: userId }) });
    const body = await response.json();
    if (!response.ok) throw new sdk.AuthenticationError(body.message, body.code, response.status);
    token = body.token;
  }
  if (!token) throw new sdk.AuthenticationError("this server needs a user token: paste one (switchboard token USER)");
  const c = new sdk.VideoClient(config.api_key, {
    user: { id: userId, name: userId },
    token,
    options: { allowMultipleActiveCalls: true, multiCallAudioPolicy: policy, suspendMode },
  });
  await c.connect();
  client = c;
  window.switchboardPage.client = c;
  $("whoami").textContent = `signed in as ${userId}`;
  $("signin").hidden = true;
  $("lobby").hidden = false;
  c.state.activeCalls.listen(render);
  c.state.incomingCall.listen(renderIncoming);
  setInterval(updateLevels, 100);
}

/** @param {sdk.Call | null} call */
function renderIncoming(call) {
  $("incoming").hidden = !call;
  if (call) {
    const caller = call.state.value.members.find((m) => m.role === "host")?.user_id ?? "someone";
    $("incoming-text").textContent = `${caller} is calling (${call.cid})`;
  }
}

/** The call holding the audio focus: the first active call that is not suspended. */
function focusedCall() {
  return client?.state.activeCalls.value.find((c) => !c.state.value.isAudioSuspended) ?? null;
}

/** @type {Map<string, () => void>} cid -> unsubscribe from that call's state and events */
const watched = new Map();
/** @type {Map<string, {key: string, card: HTMLElement}>} cid -> its card and what it shows */
const cards = new Map();
/** cids whose audio controls are open */
const audioOpen = new Set();
/** @type {MediaStreamTrack | null} what callers on hold hear (one tone for every call) */
let holdTone = null;

/** @param {string} text */
function showNotice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
}

function render() {
  if (!client) return;
  const calls = client.state.activeCalls.value;
  for (const [cid, stop] of watched) {
    if (!calls.some((c) => c.cid === cid)) {
      stop();
      watched.delete(cid);
    }
  }
  for (const call of calls) {
    if (watched.has(call.cid)) continue;
    const stops = [
      call.state.listen(() => renderCalls()),
      call.on("call.muted_by_moderator", (e) => showNotice(`${e.by} muted your ${e.kinds.join(" and ")} in ${call.cid}`)),
      call.on("call.removed", (e) => showNotice(`${e.by} removed you from ${call.cid}`)),
    ];
    watched.set(call.cid, () => stops.forEach((stop) => stop()));
  }
  renderCalls();
}

/**
 * Small labels for a person's microphone and camera.
 * @param {boolean} mic
 * @param {boolean} camera
 */
function tags(mic, camera) {
  return [mic ? "mic on" : "muted", ...(camera ? ["camera"] : [])].map((text) => {
    const tag = document.createElement("span");
    tag.className = `tag${text === "muted" ? "" : " on"}`;
    tag.textContent = text;
    return tag;
  });
}

/**
 * @param {string} text
 * @param {() => Promise<unknown>} action
 * @param {string} [cls]
 * @param {string} [name] data-action, for scripts and tests
 */
function button(text, action, cls = "secondary", name = "") {
  const b = document.createElement("button");
  b.textContent = text;
  b.className = cls;
  if (name) b.dataset.action = name;
  b.addEventListener("click", () => guarded(action));
  return b;
}

/**
 * What a call's card shows, as a string: the card is rebuilt only when it changes (the SFU's audio
 * levels change the call state a few times a second; the sliders must survive that).
 * @param {sdk.Call} call
 */
function cardKey(call) {
  const s = call.state.value;
  return JSON.stringify([
    s.status,
    s.isAudioSuspended,
    s.suspendMode,
    s.ownCapabilities,
    call.microphoneEnabled,
    call.cameraEnabled,
    call.microphoneAudience,
    s.participants.map((p) => [p.sessionId, p.userId, p.audioMuted, p.videoMuted, p.videoTrack?.id ?? null, p.audience]),
  ]);
}

function renderCalls() {
  if (!client) return;
  const calls = client.state.activeCalls.value;
  for (const cid of cards.keys()) if (!calls.some((c) => c.cid === cid)) cards.delete(cid);
  const nodes = calls.map((call) => {
    const key = cardKey(call);
    const known = cards.get(call.cid);
    if (known && known.key === key) return known.card;
    const card = buildCard(call);
    cards.set(call.cid, { key, card });
    return card;
  });
  const main = $("calls");
  if (nodes.length !== main.children.length || nodes.some((node, i) => main.children[i] !== node)) {
    main.replaceChildren(...nodes);
  }
}

/**
 * A small label.
 * @param {string} text
 * @param {string} cls
 */
function tag(text, cls) {
  const t = document.createElement("span");
  t.className = `tag ${cls}`;
  t.textContent = text;
  return t;
}

/**
 * Volume, side and whisper for one call, folded away until opened.
 * @param {sdk.Call} call
 */
function audioControls(call) {
  const details = document.createElement("details");
  details.className = "audio-controls";
  details.open = audioOpen.has(call.cid);
  details.addEventListener("toggle", () => (details.open ? audioOpen.add(call.cid) : audioOpen.delete(call.cid)));
  const summary = document.createElement("summary");
  summary.textContent = "Audio";
  /**
   * @param {string} label
   * @param {string} name
   * @param {{min: number, max: number, step: number, value: number}} range
   * @param {(value: number) => Promise<unknown>} apply
   */
  const slider = (label, name, range, apply) => {
    const wrap = document.createElement("label");
    wrap.textContent = label;
    const el = document.createElement("input");
    el.type = "range";
    el.dataset.control = name;
    Object.assign(el, { min: String(range.min), max: String(range.max), step: String(range.step), value: String(range.value) });
    el.addEventListener("input", () => guarded(() => apply(Number(el.value))));
    wrap.append(el);
    return wrap;
  };
  const volume = slider("Volume (dB)", "gain", { min: -40, max: 12, step: 1, value: call.playoutGainDb }, (v) => call.setPlayoutGain(v));
  const side = slider("Left / right", "pan", { min: -1, max: 1, step: 0.1, value: call.playoutPan }, (v) => call.setPlayoutPan(v));
  const whisper = document.createElement("label");
  whisper.textContent = "Who hears me";
  const select = document.createElement("select");
  select.dataset.control = "audience";
  const others = [...new Set(call.state.value.participants.map((p) => p.userId))];
  const audience = call.microphoneAudience;
  for (const [value, text] of [["", "everyone"], ...others.map((u) => [u, `only ${u} (whisper)`])]) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    option.selected = audience === null ? value === "" : audience.length === 1 && audience[0] === value;
    select.append(option);
  }
  select.addEventListener("change", () => guarded(() => call.setMicrophoneAudience(select.value ? [select.value] : null)));
  whisper.append(select);
  details.append(summary, volume, side, whisper);
  return details;
}

/** @param {sdk.Call} call */
function buildCard(call) {
  const state = call.state.value;
  const me = client?.user.id ?? "";
  const card = document.createElement("article");
  card.className = `call${state.isAudioSuspended ? " suspended" : ""}`;
  card.dataset.cid = call.cid;
  const title = document.createElement("h3");
  title.append(call.cid);
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent =
    state.status !== "joined"
      ? state.status
      : !state.isAudioSuspended
        ? "in focus"
        : state.suspendMode === sdk.SuspendMode.DUCKED
          ? "background, quiet"
          : "background";
  title.append(badge);
  const people = document.createElement("ul");
  people.className = "people";
  const self = document.createElement("li");
  self.dataset.local = "true";
  self.innerHTML = `<span class="dot"></span>`;
  self.append(`${me} (you)`, ...tags(call.microphoneEnabled && !state.isAudioSuspended, call.cameraEnabled));
  const audience = call.microphoneAudience;
  if (audience !== null) self.append(tag(audience.length ? `whispering to ${audience.join(", ")}` : "nobody hears you", "whisper"));
  people.append(self);
  /** @type {HTMLVideoElement[]} */
  const videos = [];
  for (const p of state.participants) {
    const li = document.createElement("li");
    li.dataset.session = p.sessionId;
    li.innerHTML = `<span class="dot"></span>`;
    li.append(p.userId, ...tags(!p.audioMuted, !p.videoMuted));
    if (p.isWhisperingTo(me)) li.append(tag("whispering to you", "whisper"));
    else if (p.audience !== null) li.append(tag("whispering", "whisper"));
    people.append(li);
    if (p.videoTrack && !p.videoMuted) {
      const v = document.createElement("video");
      v.autoplay = v.muted = v.playsInline = true;
      v.srcObject = new MediaStream([p.videoTrack]);
      videos.push(v);
    }
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  if (state.ownCapabilities.includes("send-audio")) {
    actions.append(
      button(call.microphoneEnabled ? "Mute" : "Unmute", () => call.setMicrophoneEnabled(!call.microphoneEnabled), "secondary", "mic"),
    );
  }
  if (state.ownCapabilities.includes("send-video")) {
    actions.append(
      button(call.cameraEnabled ? "Camera off" : "Camera on", () => call.setCameraEnabled(!call.cameraEnabled), "secondary", "camera"),
    );
  }
  if (state.isAudioSuspended) {
    actions.append(
      button("Focus", async () => {
        const focused = focusedCall();
        if (focused && focused !== call) await client?.switchFocus(focused, call);
        else await call.resumeAudio();
      }, "", "focus"),
    );
  } else {
    actions.append(button("Background", () => call.suspendAudio(), "secondary", "background"));
    actions.append(
      button(
        "Hold",
        () => {
          holdTone ??= client?.audioSession.toneTrack(440, -24) ?? null;
          return call.suspendAudio({ mode: sdk.SuspendMode.SILENT, holdAudio: holdTone });
        },
        "secondary",
        "hold",
      ),
    );
  }
  actions.append(button("Leave", () => call.leave(), "danger", "leave"));
  card.append(title, people, ...videos, actions, audioControls(call));
  return card;
}

function updateLevels() {
  if (!client) return;
  for (const call of client.state.activeCalls.value) {
    const card = document.querySelector(`article[data-cid="${CSS.escape(call.cid)}"]`);
    if (!card) continue;
    const state = call.state.value;
    const heard = state.suspendMode !== sdk.SuspendMode.SILENT;
    for (const p of state.participants) {
      const li = card.querySelector(`li[data-session="${CSS.escape(p.sessionId)}"]`);
      li?.querySelector(".dot")?.classList.toggle("speaking", heard && (p.isSpeaking || p.audioLevel() > SPEAKING_DBFS));
      li?.classList.toggle("dominant", state.dominantSpeaker?.sessionId === p.sessionId);
    }
    const own = state.localParticipant;
    const self = card.querySelector("li[data-local]");
    self?.querySelector(".dot")?.classList.toggle("speaking", own?.isSpeaking ?? false);
    self?.classList.toggle("dominant", own !== null && state.dominantSpeaker?.sessionId === own.sessionId);
  }
}

/**
 * @param {string} type
 * @param {string} id
 * @param {boolean} camera
 */
async function joinCall(type, id, camera) {
  if (!client) return;
  const call = client.makeCall(type, id);
  await call.getOrCreate();
  await call.join({ camera });
}

window.switchboardPage = { client: null, sdk, joinCall };

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void guarded(() =>
    signIn(input("user-id").value, input("user-token").value, input("policy").value, input("suspend-mode").value),
  );
});
$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void guarded(() => joinCall(input("call-type").value, input("call-id").value, input("join-camera").checked));
});
$("ring-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void guarded(async () => {
    if (!client) return;
    const callee = input("ring-user").value;
    const call = client.makeCall("default", `${client.user.id}-${callee}-${Date.now()}`);
    await call.getOrCreate({ members: [{ user_id: client.user.id }, { user_id: callee }], ring: true });
    await call.join({ camera: false });
  });
});
$("accept-button").addEventListener("click", () =>
  guarded(async () => {
    const call = client?.state.incomingCall.value;
    if (!call) return;
    await call.accept();
    await call.join({ camera: false });
  }),
);
$("reject-button").addEventListener("click", () => guarded(async () => client?.state.incomingCall.value?.reject()));

await guarded(async () => {
  await loadConfig();
  const params = new URLSearchParams(location.search);
  input("user-id").value = params.get("user") ?? "";
  input("user-token").value = params.get("token") ?? "";
  if (params.get("policy")) input("policy").value = /** @type {string} */ (params.get("policy"));
  if (params.get("suspend")) input("suspend-mode").value = /** @type {string} */ (params.get("suspend"));
  if (params.get("autologin") && input("user-id").value) {
    await signIn(input("user-id").value, input("user-token").value, input("policy").value, input("suspend-mode").value);
  }
});
