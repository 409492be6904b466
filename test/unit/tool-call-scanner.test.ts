import { describe, expect, it } from 'vitest';
import { ToolCallScanner, toolCallsOfOutput } from '../../src/usage/extract.js';

const answer = (indent?: number): Buffer =>
  Buffer.from(
    JSON.stringify(
      {
        object: 'response',
        output: [
          { type: 'web_search_call', id: 'ws_1', status: 'completed' },
          { type: 'file_search_call', id: 'fs_1', status: 'completed' },
          { type: 'web_search_call', id: 'ws_2', status: 'completed' },
          // A model's text that quotes the pattern is escaped inside its string: not a call.
          { type: 'message', content: [{ type: 'output_text', text: 'say "type":"web_search_call" and "type": "file_search_call"' }] },
        ],
        usage: { input_tokens: 1, output_tokens: 1 },
      },
      null,
      indent,
    ),
  );

describe('ToolCallScanner', () => {
  for (const indent of [undefined, 2]) {
    it(`counts the calls of a ${indent ? 'indented' : 'compact'} answer whatever its chunking, and never text that quotes them`, () => {
      const bytes = answer(indent);
      for (const size of [1, 2, 7, 24, 25, 64, bytes.length]) {
        const scanner = new ToolCallScanner();
        for (let at = 0; at < bytes.length; at += size) scanner.push(bytes.subarray(at, at + size));
        expect(scanner.counts(), `chunks of ${size}`).toEqual({ webSearch: 2, fileSearch: 1 });
      }
    });
  }

  it('an answer without calls has none', () => {
    const scanner = new ToolCallScanner();
    scanner.push(Buffer.from('{"output":[{"type":"message"}],"tools":[{"type":"web_search"}]}'));
    expect(scanner.counts()).toBeUndefined();
  });

  it('a stream terminal event counts its output items', () => {
    expect(toolCallsOfOutput([{ type: 'web_search_call' }, { type: 'message' }, { type: 'file_search_call' }, { type: 'file_search_call' }])).toEqual({ webSearch: 1, fileSearch: 2 });
    expect(toolCallsOfOutput([{ type: 'message' }])).toBeUndefined();
    expect(toolCallsOfOutput(undefined)).toBeUndefined();
  });
});
