import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError, InvalidRequestError, UnexpectedBodyError, UnsupportedContentTypeError } from '../errors/errors.js';
import type { BodyKind } from './endpoints.js';

/**
 * What a request body is, checked against what its endpoint takes. Every body kind an endpoint
 * does not take is refused before anything is read or forwarded: a client cannot skip the key's
 * policy by sending JSON as `text/plain`, or a form where JSON is expected.
 */

/** The media type of a Content-Type header, lower-cased, without parameters; undefined when absent. */
export function mediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const semicolon = header.indexOf(';');
  return (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase();
}

/** A JSON body is UTF-8 (RFC 8259): a declared charset other than utf-8 is refused, not guessed at. */
export function isJsonContentType(header: string | undefined): boolean {
  if (mediaType(header) !== 'application/json') return false;
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(header as string)?.[1]?.toLowerCase();
  return charset === undefined || charset === 'utf-8' || charset === 'utf8';
}

export function hasRequestBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

const ACCEPTED: Record<Exclude<BodyKind, 'none'>, readonly string[]> = {
  json: ['application/json'],
  multipart: ['multipart/form-data'],
  json_or_multipart: ['application/json', 'multipart/form-data'],
  sdp_or_multipart: ['application/sdp', 'multipart/form-data'],
};

/** How the body of this request is to be read. */
export type BodyForm = 'empty' | 'json' | 'multipart' | 'sdp';

/**
 * Check the request's body against its endpoint's kind. `parsedJson`: Fastify's JSON parser took
 * the body (its content type is application/json). Throws the OpenAI-shaped refusal.
 */
export function bodyForm(kind: BodyKind, raw: IncomingMessage, parsedJson: boolean): BodyForm {
  if (parsedJson) {
    // POSTs without a body of their own (`…/cancel`) accept the `{}` some clients send.
    if (kind === 'json' || kind === 'json_or_multipart' || (kind === 'none' && raw.method === 'POST')) return 'json';
  } else if (!hasRequestBody(raw)) {
    return 'empty';
  }
  if (kind === 'none') {
    if (raw.method !== 'POST') throw new UnexpectedBodyError(raw.method ?? 'GET');
    throw new UnsupportedContentTypeError(raw.headers['content-type'], ['application/json']);
  }
  const accepted = ACCEPTED[kind];
  const type = mediaType(raw.headers['content-type']);
  if (type === 'multipart/form-data' && accepted.includes(type) && /;\s*boundary=/i.test(raw.headers['content-type'] as string)) return 'multipart';
  if (type === 'application/sdp' && accepted.includes(type)) return 'sdp';
  throw new UnsupportedContentTypeError(raw.headers['content-type'], accepted);
}

/**
 * The text fields of a form, for the few tollgate reads (the model, `stream`). Reading a field
 * given twice, or longer than tollgate holds, is refused (which value would the upstream use?);
 * the others are forwarded as sent: array fields such as `timestamp_granularities[]` repeat by
 * design, and a long field tollgate does not read (a data URL) is no concern of its.
 */
export class FormFields {
  private readonly values = new Map<string, string>();
  private readonly unusable = new Map<string, 'is too long' | 'was given more than once'>();

  add(name: string, value: string, truncated: boolean): void {
    if (this.unusable.has(name)) return;
    if (truncated || this.values.has(name)) {
      this.values.delete(name);
      this.unusable.set(name, truncated ? 'is too long' : 'was given more than once');
    } else {
      this.values.set(name, value);
    }
  }

  /** The field's value; undefined when absent. Throws the refusal for a repeated or truncated field. */
  get(name: string): string | undefined {
    const why = this.unusable.get(name);
    if (why) throw new InvalidRequestError(`The form field '${name}' ${why}.`, name, 'invalid_multipart');
    return this.values.get(name);
  }
}

/** A multipart form read whole: its bytes (forwarded as they came) and its text fields. */
export interface HeldForm {
  readonly bytes: Buffer;
  readonly fields: FormFields;
  /** Bytes of its file parts (an upload's size, for unit quotes). */
  readonly fileBytes: number;
}

const FIELD_LIMITS = { fieldSize: 1024 * 1024, fields: 256, parts: 1024 };

/**
 * Read a multipart upload whole (up to `limitBytes`) and parse its text fields, files skipped.
 * Used where the form names the model: the key's policy is applied before a byte goes upstream.
 */
export function holdMultipart(raw: IncomingMessage, limitBytes: number): Promise<HeldForm> {
  const declared = Number(raw.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(new BodyTooLargeError(limitBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const fields = new FormFields();
    let size = 0;
    let failed = false;
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      raw.unpipe(parser);
      parser.destroy();
      raw.resume();
      reject(err);
    };
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: raw.headers, limits: FIELD_LIMITS });
    } catch {
      reject(new InvalidRequestError('The multipart body could not be parsed: its Content-Type has no usable boundary.', null, 'invalid_multipart'));
      return;
    }
    parser.on('field', (name, value, info) => fields.add(name, value, info.valueTruncated || info.nameTruncated));
    let fileBytes = 0;
    parser.on('file', (_name, file) => {
      file.on('data', (data: Buffer) => (fileBytes += data.length));
    });
    parser.on('partsLimit', () => fail(new InvalidRequestError('The form has too many parts.', null, 'invalid_multipart')));
    parser.on('fieldsLimit', () => fail(new InvalidRequestError('The form has too many fields.', null, 'invalid_multipart')));
    parser.on('error', () => fail(new InvalidRequestError('The multipart body could not be parsed.', null, 'invalid_multipart')));
    parser.on('close', () => {
      if (!failed) resolve({ bytes: Buffer.concat(chunks, size), fields, fileBytes });
    });
    raw.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) return fail(new BodyTooLargeError(limitBytes));
      chunks.push(chunk);
    });
    raw.on('aborted', () => fail(new InvalidRequestError('The request body ended early.', null, 'invalid_multipart')));
    raw.on('error', (err) => fail(err));
    raw.pipe(parser);
  });
}
