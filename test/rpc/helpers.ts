/** A test frame: a 4-byte length (not counting itself), a 4-byte serial, then the body. */
export function frame(serial: number, body = ''): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt32BE(b.length - 4, 0);
  b.writeUInt32BE(serial, 4);
  b.write(body, 8);
  return b;
}
