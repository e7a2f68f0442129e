// Parley voice: microphone → AudioWorklet → 16 kHz PCM16 over ws/voice/, and the spoken reply played
// gaplessly through AudioContext. Two modes (docs/protocol.md): push-to-talk, where holding the mic
// (or the space bar) is the utterance, and hands-free, where the server ends each utterance at a pause
// and the page listens again as soon as the reply plays: speaking over it interrupts it (barge-in). SPDX-License-Identifier: GPL-3.0-or-later

const MODE_KEY = "parley.voiceMode";
const LABELS = { ptt: "Hold to talk", vad: "Tap to talk", vadOn: "Tap to stop" };

function storedMode() {
  try { return localStorage.getItem(MODE_KEY) === "vad" ? "vad" : "ptt"; } catch { return "ptt"; }
}

export function setupVoice({ conversationId, bubble, handleFrame, startAssistantBubble }) {
  const control = document.getElementById("voice-control");
  const mic = document.getElementById("mic");
  if (!control || !mic) return;
  const label = document.getElementById("mic-label");
  const statusBox = document.getElementById("voice-bar");
  const stateEl = document.getElementById("voice-state");
  const level = document.getElementById("voice-level");
  const partialEl = document.getElementById("voice-partial");
  const handsFreeSwitch = document.getElementById("voice-hands-free");

  let mode = storedMode();
  let socket = null;
  let context = null;
  let stream = null;
  let listening = false;   // audio frames are going to the server
  let starting = false;    // between the press and the `start` frame (microphone and socket opening)
  let held = false;        // push-to-talk: the button or the space bar is down
  let handsFree = false;   // hands-free: the session is on (listen, answer, listen again)
  let turnDone = false;    // `done` arrived; hands-free listens again once playback has ended too
  let overReply = false;   // hands-free: listening while the reply plays, for the user to talk over it
  let playHead = 0;
  let playbackRate = 22050;
  let playing = new Set();
  let playedSeconds = 0;

  const report = () => { document.body.dataset.voicePlayedSeconds = playedSeconds.toFixed(3); };

  // One place decides what the control shows; its size never depends on it.
  let errorTimer = null;
  function show(state, text = "") {
    control.dataset.state = state;
    control.dataset.mode = mode;
    stateEl.textContent = text;
    statusBox.classList.toggle("is-empty", !text);
    if (state !== "listening") level.value = 0;
    if (state !== "listening" && state !== "thinking") partialEl.textContent = "";
    // An error stays long enough to read, then stops covering the composer (the chat's status keeps it).
    clearTimeout(errorTimer);
    if (state === "error") errorTimer = setTimeout(() => { if (control.dataset.state === "error") show("idle"); }, 10000);
    const on = mode === "ptt" ? listening : handsFree;
    mic.setAttribute("aria-pressed", String(on));
    label.textContent = mode === "ptt" ? LABELS.ptt : on ? LABELS.vadOn : LABELS.vad;
    handsFreeSwitch.checked = mode === "vad";
  }

  const listeningText = () => (mode === "ptt" ? "Listening… release to send."
    : "Listening… speak, and I answer when you pause.");
  const speakingText = () => (mode === "ptt" ? "Speaking… hold the button to interrupt."
    : "Speaking… talk to interrupt me. Tap to stop.");

  function openSocket() {
    if (socket && socket.readyState <= WebSocket.OPEN) return socket;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/voice/${conversationId}/`);
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") onFrame(JSON.parse(event.data));
      else playPcm(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== socket) return;
      const active = listening || handsFree || starting;
      listening = false;
      handsFree = false;
      if (event.code === 4401 || event.code === 4403) {
        mic.disabled = true;
        show("error", "Voice is not available for this conversation.");
      } else if (active) {
        show("error", "The voice connection dropped. Press the microphone to try again.");
      }
    });
    socket = ws;
    return ws;
  }

  function whenOpen(ws) {
    return ws.readyState === WebSocket.OPEN ? Promise.resolve()
      : new Promise((resolve, reject) => {
        ws.addEventListener("open", resolve, { once: true });
        ws.addEventListener("error", reject, { once: true });
      });
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  async function ensureAudio() {
    if (context) return true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      const missing = error && (error.name === "NotFoundError" || error.name === "OverconstrainedError");
      mic.disabled = true;
      show("error", denied ? "Microphone access was denied. Allow it in your browser's site settings, or type instead."
        : missing ? "No microphone was found. Connect one, or type instead."
          : `The microphone could not start (${error && error.name}). You can still type.`);
      return false;
    }
    context = new AudioContext();
    await context.audioWorklet.addModule("/static/js/pcm-worklet.js");
    const source = context.createMediaStreamSource(stream);
    const worklet = new AudioWorkletNode(context, "pcm-framer");
    worklet.port.onmessage = ({ data }) => {
      // Nothing is sent, and the meter rests, unless the page is listening: never while a reply plays.
      if (!listening) return;
      level.value = Math.min(1, data.level * 4);
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(data.pcm);
    };
    source.connect(worklet);
    return true;
  }

  function stopPlayback() {
    for (const node of playing) { try { node.stop(); } catch { /* already ended */ } }
    playing = new Set();
    playHead = 0;
    document.body.dataset.voiceSpeaking = "false";
  }

  function playPcm(buffer) {
    if (!context) return;
    const samples = new Int16Array(buffer);
    const audio = context.createBuffer(1, samples.length, playbackRate);
    const channel = audio.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const node = context.createBufferSource();
    node.buffer = audio;
    node.connect(context.destination);
    // Schedule back to back so sentence chunks play without gaps.
    playHead = Math.max(playHead, context.currentTime + 0.02);
    node.start(playHead);
    playHead += audio.duration;
    playing.add(node);
    document.body.dataset.voiceSpeaking = "true";
    if (!listening || overReply) show("speaking", speakingText());
    node.onended = () => {
      if (!playing.delete(node)) return; // stopped by a barge-in
      playedSeconds += audio.duration;
      report();
      if (!playing.size) {
        document.body.dataset.voiceSpeaking = "false";
        if (listening) {
          overReply = false;
          show("listening", listeningText());
        } else if (!relisten() && control.dataset.state === "speaking") show("idle");
      }
    };
  }

  // Hands-free: the next utterance starts once the reply is complete and has been heard.
  function relisten() {
    if (!(handsFree && turnDone && !playing.size && !listening)) return false;
    turnDone = false;
    startListening();
    return true;
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "partial":
        if (listening) partialEl.textContent = frame.text;
        break;
      case "speech_end":
        // The server ended the utterance (a pause in hands-free, or the length limit): stop sending.
        listening = false;
        overReply = false;
        show("thinking", "Thinking…");
        break;
      case "transcript":
        partialEl.textContent = "";
        if (frame.text) {
          const userBubble = bubble("user", frame.text, "voice");
          userBubble.el.querySelector(".msg__body").dataset.final = "true";
          startAssistantBubble();
        }
        break;
      case "audio_start":
        playbackRate = frame.sample_rate;
        // Hands-free: the microphone opens while the reply plays, so the user can talk over it.
        if (handsFree && !listening && !starting) startListening({ overReply: true });
        break;
      case "speech_start":
        // The server heard the user start speaking: a reply still playing stops at once (barge-in).
        if (playing.size) stopPlayback();
        if (listening) {
          overReply = false;
          show("listening", listeningText());
        }
        break;
      case "audio_end":
        break;
      case "done":
        handleFrame(frame);
        turnDone = true;
        if (!relisten() && !playing.size && !listening && !starting && control.dataset.state !== "error") show("idle");
        break;
      case "error":
        handleFrame(frame);
        // What was heard past the limit is still answered; any other error ends a hands-free session,
        // so a room with no speech, or a spent plan, never loops.
        if (frame.code !== "utterance_too_long") handsFree = false;
        if (!listening) {
          show("error", frame.message);
          if (frame.upgrade_url) {
            const upgrade = document.createElement("a");
            upgrade.className = "voice-status__upgrade";
            upgrade.href = frame.upgrade_url;
            upgrade.textContent = "Upgrade";
            stateEl.append(" ", upgrade);
          }
        }
        break;
      default:
        handleFrame(frame);
    }
  }

  async function startListening({ overReply: whilePlaying = false } = {}) {
    if (listening || starting) return;
    starting = true;
    turnDone = false;
    try {
      if (!(await ensureAudio())) { handsFree = false; return; }
      await context.resume();
      const ws = openSocket();
      try { await whenOpen(ws); } catch {
        handsFree = false;
        show("error", "Could not connect for voice. Check your connection.");
        return;
      }
      // Released (or switched off) while the microphone and socket were opening: no utterance.
      if (mode === "ptt" ? !held : !handsFree) {
        show(mode === "ptt" ? "error" : "idle", mode === "ptt" ? "Hold the button while you speak." : "");
        return;
      }
      overReply = whilePlaying && playing.size > 0;
      if (overReply) {
        ws.send(JSON.stringify({ type: "start", sample_rate: 16000, mode, barge_in: true }));
      } else {
        stopPlayback(); // pressing to talk stops the reply
        ws.send(JSON.stringify({ type: "start", sample_rate: 16000, mode }));
      }
      listening = true;
      if (!overReply) show("listening", listeningText());
    } finally {
      starting = false;
    }
  }

  function endUtterance() {
    if (!listening) return;
    listening = false;
    overReply = false;
    send({ type: "end" });
    show("thinking", "Thinking…");
  }

  // Stop listening, thinking and speaking (hands-free switched off, or the mode changed).
  function cancelAll() {
    const active = listening || handsFree || playing.size || control.dataset.state === "thinking";
    listening = false;
    overReply = false;
    handsFree = false;
    turnDone = false;
    stopPlayback();
    if (active) send({ type: "cancel" });
    show("idle");
  }

  function press() {
    if (mic.disabled) return;
    if (mode === "ptt") {
      held = true;
      startListening();
    } else if (handsFree) {
      cancelAll();
    } else {
      handsFree = true;
      show("thinking", "Starting the microphone…");
      startListening();
    }
  }

  function release() {
    if (mode !== "ptt" || !held) return;
    held = false;
    endUtterance();
  }

  // Pointer capture: once pressed, the release is the mic's wherever the pointer is by then, so a
  // turn always ends (pointerup), also when the browser takes the pointer away (pointercancel, lost capture).
  mic.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || mode !== "ptt") return;
    event.preventDefault(); // no focus ring flash, no text selection, no emulated mouse events
    try { mic.setPointerCapture(event.pointerId); } catch { /* the pointer is already gone */ }
    press();
  });
  mic.addEventListener("pointerup", release);
  mic.addEventListener("pointercancel", release);
  mic.addEventListener("lostpointercapture", release);
  mic.addEventListener("contextmenu", (event) => event.preventDefault()); // a long touch is a press, not a menu
  // Hands-free is a toggle: a click (mouse, touch, Enter or Space on the focused button).
  mic.addEventListener("click", () => { if (mode === "vad") press(); });
  mic.addEventListener("keydown", (event) => {
    if (mode !== "ptt" || (event.key !== " " && event.key !== "Enter")) return;
    event.preventDefault();
    if (!event.repeat) press();
  });
  mic.addEventListener("keyup", (event) => { if (event.key === " " || event.key === "Enter") release(); });

  // The space bar anywhere but a form control is the mic too: held for push-to-talk, a tap for hands-free.
  const typing = (target) => target.closest?.("input, textarea, select, button, a[href], [contenteditable]");
  document.addEventListener("keydown", (event) => {
    if (event.code !== "Space" || typing(event.target)) return;
    event.preventDefault();
    if (!event.repeat) press();
  });
  document.addEventListener("keyup", (event) => {
    if (event.code === "Space" && !typing(event.target)) release();
  });
  // A key or pointer released while the window was in the background never arrives.
  window.addEventListener("blur", release);

  handsFreeSwitch.addEventListener("change", () => {
    const chosen = handsFreeSwitch.checked ? "vad" : "ptt";
    held = false;
    cancelAll();
    mode = chosen;
    try { localStorage.setItem(MODE_KEY, mode); } catch { /* private browsing: the choice lasts this page */ }
    show("idle");
  });

  show("idle");
  report();
  window.parleyVoice = { get playedSeconds() { return playedSeconds; }, get mode() { return mode; } };
}
