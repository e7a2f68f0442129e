// Parley push-to-talk: microphone → AudioWorklet → 16 kHz PCM16 over ws/voice/, and the spoken
// reply played gaplessly through AudioContext. SPDX-License-Identifier: GPL-3.0-or-later

export function setupVoice({ conversationId, bubble, handleFrame, startAssistantBubble }) {
  const mic = document.getElementById("mic");
  const bar = document.getElementById("voice-bar");
  const stateEl = document.getElementById("voice-state");
  const level = document.getElementById("voice-level");
  const partialEl = document.getElementById("voice-partial");
  const input = document.getElementById("composer-input");
  if (!mic) return;

  let socket = null;
  let context = null;
  let worklet = null;
  let stream = null;
  let talking = false;
  let playHead = 0;
  let playbackRate = 22050;
  let playing = new Set();
  let playedSeconds = 0;
  let userBubble = null;

  const state = (text) => { stateEl.textContent = text; };
  const report = () => { document.body.dataset.voicePlayedSeconds = playedSeconds.toFixed(3); };
  report();

  function openSocket() {
    if (socket && socket.readyState <= WebSocket.OPEN) return socket;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/voice/${conversationId}/`);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") onFrame(JSON.parse(event.data));
      else playPcm(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4401 || event.code === 4403) state("Voice is not available for this conversation.");
    });
    return socket;
  }

  function whenOpen(ws) {
    return ws.readyState === WebSocket.OPEN ? Promise.resolve()
      : new Promise((resolve, reject) => {
        ws.addEventListener("open", resolve, { once: true });
        ws.addEventListener("error", reject, { once: true });
      });
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
      state(denied ? "Microphone access was denied. Allow it in your browser's site settings, or type instead."
        : missing ? "No microphone was found. Connect one, or type instead."
          : `The microphone could not start (${error && error.name}). You can still type.`);
      bar.hidden = false;
      mic.disabled = true;
      return false;
    }
    context = new AudioContext();
    await context.audioWorklet.addModule("/static/js/pcm-worklet.js");
    const source = context.createMediaStreamSource(stream);
    worklet = new AudioWorkletNode(context, "pcm-framer");
    worklet.port.onmessage = ({ data }) => {
      level.value = Math.min(1, data.level * 4);
      // Audio is only sent while the button is held: nothing is captured while the reply plays.
      if (talking && socket && socket.readyState === WebSocket.OPEN) socket.send(data.pcm);
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
    state("Speaking… hold the button to interrupt.");
    node.onended = () => {
      playing.delete(node);
      playedSeconds += audio.duration;
      report();
      if (!playing.size) {
        document.body.dataset.voiceSpeaking = "false";
        state("Hold the microphone button or the space bar to talk.");
      }
    };
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "partial":
        partialEl.textContent = frame.text;
        break;
      case "transcript":
        partialEl.textContent = "";
        if (frame.text) {
          userBubble = bubble("user", frame.text, "voice");
          userBubble.el.querySelector(".msg__body").dataset.final = "true";
          startAssistantBubble();
        }
        break;
      case "audio_start":
        playbackRate = frame.sample_rate;
        break;
      case "audio_end":
        break;
      case "error":
        state(frame.message);
        handleFrame(frame);
        break;
      default:
        handleFrame(frame);
    }
  }

  async function startTalking() {
    if (talking) return;
    bar.hidden = false;
    if (!(await ensureAudio())) return;
    await context.resume();
    const ws = openSocket();
    try { await whenOpen(ws); } catch { state("Could not connect for voice. Check your connection."); return; }
    stopPlayback(); // barge-in: speaking again stops the reply
    ws.send(JSON.stringify({ type: "start", sample_rate: 16000, mode: "ptt" }));
    talking = true;
    mic.setAttribute("aria-pressed", "true");
    mic.classList.add("is-recording");
    partialEl.textContent = "";
    state("Listening… release to send.");
  }

  function stopTalking() {
    if (!talking) return;
    talking = false;
    mic.setAttribute("aria-pressed", "false");
    mic.classList.remove("is-recording");
    level.value = 0;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "end" }));
    state("Thinking…");
  }

  mic.addEventListener("pointerdown", (event) => { event.preventDefault(); startTalking(); });
  mic.addEventListener("pointerup", stopTalking);
  mic.addEventListener("pointerleave", stopTalking);
  mic.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) { event.preventDefault(); startTalking(); }
  });
  mic.addEventListener("keyup", (event) => { if (event.key === " " || event.key === "Enter") stopTalking(); });
  // Space bar anywhere outside a text field is push-to-talk too.
  document.addEventListener("keydown", (event) => {
    if (event.code === "Space" && !event.repeat && event.target !== input && event.target.tagName !== "INPUT"
        && event.target !== mic) { event.preventDefault(); startTalking(); }
  });
  document.addEventListener("keyup", (event) => {
    if (event.code === "Space" && event.target !== input && event.target !== mic) stopTalking();
  });
  window.parleyVoice = { get playedSeconds() { return playedSeconds; } };
}
