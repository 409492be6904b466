import { describe, expect, it } from 'vitest';
import { buildCatalogue } from '../../src/config/catalogue.js';
import { configFromObject } from '../../src/config/load.js';
import { shutdownsFrom } from '../../src/upstream/model-dates.js';

const catalogue = buildCatalogue(configFromObject({ models: { catalogue: [{ name: 'old-model', aliases: ['old-alias'] }] } }));
const at = (iso: string) => Date.parse(iso);

describe('shutdown dates in a GET /models answer', () => {
  it('reads shutdown_date, shutdown_at and deprecation.inference (the earliest counts), by catalogue name', () => {
    const found = shutdownsFrom(
      {
        object: 'list',
        data: [
          { id: 'old-alias', shutdown_date: '2031-05-02', shutdown_at: at('2031-04-01T12:00:00Z') / 1000, successor: 'gpt-4.1-nano' },
          { id: 'gpt-4.1-nano', deprecation: { fine_tune: 1, inference: at('2032-01-01T00:00:00Z') / 1000 } },
          { id: 'gpt-4o-transcribe', shutdown_date: '2033-03-04T10:00:00Z' },
          { id: 'unknown-model', shutdown_date: '2031-01-01' },
          { id: 'gpt-4o-mini-tts', shutdown_date: 'soon' },
          { id: 'gpt-4o-realtime-preview', shutdown_at: -5 },
          null,
          { shutdown_date: '2031-01-01' },
        ],
      },
      catalogue,
    );
    expect(Object.fromEntries(found)).toEqual({
      'old-model': { shutdownMs: at('2031-04-01T12:00:00Z'), shutdownDate: '2031-04-01', successor: 'gpt-4.1-nano' },
      'gpt-4.1-nano': { shutdownMs: at('2032-01-01T00:00:00Z'), shutdownDate: '2032-01-01', successor: undefined },
      'gpt-4o-transcribe': { shutdownMs: at('2033-03-04T10:00:00Z'), shutdownDate: '2033-03-04', successor: undefined },
    });
  });

  it('finds nothing in answers that are not a list', () => {
    for (const answer of [null, 'x', {}, { data: 'x' }]) expect(shutdownsFrom(answer, catalogue).size).toBe(0);
  });
});
