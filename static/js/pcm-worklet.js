// AudioWorklet: microphone audio at the context's rate → 16 kHz mono PCM16 frames of 20 ms.
// SPDX-License-Identifier: GPL-3.0-or-later
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz

class PcmFramer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / TARGET_RATE;
    this.position = 0; // fractional read position into the incoming stream
    this.carry = new Float32Array(0);
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.levelSum = 0;
    this.levelCount = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // Join the leftover from the last block so interpolation never reads past the end.
    const data = new Float32Array(this.carry.length + input.length);
    data.set(this.carry);
    data.set(input, this.carry.length);
    let pos = this.position;
    while (pos + 1 < data.length) {
      const i = Math.floor(pos);
      const frac = pos - i;
      // Average over the decimation window to avoid aliasing from plain point sampling.
      let acc = 0;
      let n = 0;
      for (let k = i; k < Math.min(data.length, i + Math.ceil(this.ratio)); k++) { acc += data[k]; n++; }
      const sample = n ? acc / n : data[i] * (1 - frac) + data[i + 1] * frac;
      const clipped = Math.max(-1, Math.min(1, sample));
      this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      this.levelSum += clipped * clipped;
      this.levelCount++;
      if (this.filled === FRAME_SAMPLES) {
        const level = Math.sqrt(this.levelSum / this.levelCount);
        this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
        this.levelSum = 0;
        this.levelCount = 0;
      }
      pos += this.ratio;
    }
    const keepFrom = Math.floor(pos);
    this.carry = data.slice(keepFrom);
    this.position = pos - keepFrom;
    return true;
  }
}

registerProcessor("pcm-framer", PcmFramer);
