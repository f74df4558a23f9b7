// TFRecord framing, as TensorFlow's record writer lays it out (all little-endian):
//   uint64 length · uint32 masked CRC-32C of the length bytes · data · uint32 masked CRC-32C of the data.

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one byte at a time from a 256-entry table. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The CRC-32C of `bytes` (the checksum TFRecord uses).
 * ```ts
 * crc32c(new TextEncoder().encode('123456789')); // 0xe3069283
 * ```
 * @param bytes the data @returns the unsigned 32-bit checksum
 */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC stored inside CRC'd data does not
 * make the outer checksum degenerate.
 * @param bytes the data @returns ((crc >>> 15) | (crc << 17)) + 0xa282ead8, modulo 2³²
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/**
 * One record framed for a TFRecord file.
 * @param data the record's payload (here a serialized `Event`) @returns header, data and footer in one buffer
 */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}
