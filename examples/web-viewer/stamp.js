// Frame stamps (see core/src/capture/stamp.rs): a 10×8 grid of black or white cells in the top-left corner of a
// test screen carrying a sync pattern 1010, the frame number, the capture time (ms since the UNIX epoch, modulo
// 2³²) and a 12-bit checksum. The viewer reads them back from decoded pixels to measure glass-to-glass latency;
// the browser host draws them on its test pattern.

const COLUMNS = 10;
const ROWS = 8;
const M64 = (1n << 64n) - 1n;

/** The side of one cell, in pixels, for a picture `width` pixels wide. */
export function cellSize(width) {
  return Math.max(4, Math.floor(width / 120));
}

function checksum(payload) {
  let x = (payload * 0x9E3779B97F4A7C15n) & M64;
  x ^= x >> 29n;
  x = (x * 0xBF58476D1CE4E5B9n) & M64;
  return (x >> 52n) & 0xFFFn;
}

/** The 80 bits of a stamp, first cell in the most significant bit. */
export function stampBits(frameNumber, captureMillis) {
  const payload = (BigInt(frameNumber >>> 0) << 32n) | BigInt(captureMillis >>> 0);
  return (0b1010n << 76n) | (payload << 12n) | checksum(payload);
}

/** Draws a stamp into a 2D canvas context. */
export function drawStamp(ctx, frameNumber, captureMillis) {
  const cell = cellSize(ctx.canvas.width);
  const bits = stampBits(frameNumber, captureMillis);
  for (let i = 0; i < COLUMNS * ROWS; i++) {
    ctx.fillStyle = (bits >> BigInt(COLUMNS * ROWS - 1 - i)) & 1n ? "#fff" : "#000";
    ctx.fillRect((i % COLUMNS) * cell, Math.floor(i / COLUMNS) * cell, cell, cell);
  }
}

/**
 * Reads the stamp from the frame a `<video>` shows now: `{ frameNumber, captureMillis }`, or null when there is
 * none (not a test screen, or a frame mid-refresh). Copies only the stamp's corner out of the video.
 */
export class StampReader {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.ctx = null;
  }

  read(video) {
    const width = video.videoWidth;
    if (!width) return null;
    const cell = cellSize(width);
    const [w, h] = [COLUMNS * cell, ROWS * cell];
    if (h > video.videoHeight) return null;
    if (this.canvas.width !== w || this.canvas.height !== h || !this.ctx) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    }
    this.ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
    const px = this.ctx.getImageData(0, 0, w, h).data;
    const inset = Math.floor(cell / 4);
    const span = Math.max(1, Math.floor(cell / 2));
    let code = 0n;
    for (let row = 0; row < ROWS; row++) {
      for (let col = 0; col < COLUMNS; col++) {
        let sum = 0;
        for (let y = row * cell + inset; y < row * cell + inset + span; y++) {
          for (let x = col * cell + inset; x < col * cell + inset + span; x++) {
            const i = (y * w + x) * 4;
            sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
          }
        }
        code = (code << 1n) | (sum / (span * span) >= 128 ? 1n : 0n);
      }
    }
    if (code >> 76n !== 0b1010n) return null;
    const payload = (code >> 12n) & M64;
    if ((code & 0xFFFn) !== checksum(payload)) return null;
    return { frameNumber: Number(payload >> 32n), captureMillis: Number(payload & 0xFFFFFFFFn) };
  }
}
