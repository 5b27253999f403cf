/**
 * Decoding of tensors sent by the kernel as raw bytes.
 *
 * The Python side (`hooklens/vis/_wire.py`) sends `{data, dtype, shape}` where `data` is a
 * buffer. Widget managers hand buffers over as `DataView`s (or ArrayBuffers when a view is fed
 * from inlined data); view code only ever sees `Tensor`.
 */

export type DType = "float32" | "float16" | "int32" | "uint8";

export interface EncodedTensor {
  data: DataView | ArrayBuffer | Uint8Array;
  dtype: DType;
  shape: number[];
}

export interface Tensor {
  /** Values in row-major order, always widened to float32 for drawing. */
  values: Float32Array;
  shape: number[];
}

const BYTES_PER_ELEMENT: Record<DType, number> = { float32: 4, float16: 2, int32: 4, uint8: 1 };

function asBytes(data: EncodedTensor["data"]): Uint8Array {
  if (data instanceof Uint8Array) return data;
  // Any typed array or DataView (also from another realm) may be a window into a larger
  // message buffer: honour byteOffset.
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const kind = Object.prototype.toString.call(data);
  if (kind === "[object ArrayBuffer]") return new Uint8Array(data as ArrayBuffer);
  const keys = data && typeof data === "object" ? Object.keys(data).slice(0, 5).join(",") : "";
  throw new Error(`tensor data must be bytes, got ${kind}${keys ? ` with keys ${keys}` : ""}`);
}

/** IEEE 754 half precision -> number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x03ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

let halfTable: Float32Array | undefined;

/** All 65536 half-precision values, built once: decoding is then one lookup per value. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) halfTable[bits] = halfToFloat(bits);
  }
  return halfTable;
}

export function decodeTensor(encoded: EncodedTensor): Tensor {
  const bytes = asBytes(encoded.data);
  const count = encoded.shape.reduce((a, b) => a * b, 1);
  const width = BYTES_PER_ELEMENT[encoded.dtype];
  if (width === undefined) throw new Error(`unknown tensor dtype '${encoded.dtype}'`);
  if (bytes.byteLength !== count * width) {
    throw new Error(
      `tensor of shape [${encoded.shape.join(", ")}] and dtype ${encoded.dtype} needs ` +
        `${count * width} bytes, got ${bytes.byteLength}`,
    );
  }
  // Copy into an aligned buffer: offsets inside a message are not guaranteed to be aligned.
  const aligned = bytes.slice().buffer;
  const values = new Float32Array(count);
  switch (encoded.dtype) {
    case "float32":
      values.set(new Float32Array(aligned));
      break;
    case "int32":
      values.set(new Int32Array(aligned));
      break;
    case "uint8":
      values.set(new Uint8Array(aligned));
      break;
    case "float16": {
      const halves = new Uint16Array(aligned);
      const table = halfLookup();
      for (let i = 0; i < count; i++) values[i] = table[halves[i]];
      break;
    }
  }
  return { values, shape: [...encoded.shape] };
}
