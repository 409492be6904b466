import { Counter, type Registry } from 'prom-client';

/** One labelled series of a Tally: the hot path adds to `value`, nothing else. */
export interface Cell {
  value: number;
}

export interface TallyOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registry: Registry;
  /** The exposed value is `value / divisor` (nano-dollars → dollars: 1e9). Default 1. */
  readonly divisor?: number;
}

/**
 * A Prometheus counter kept in plain number cells. prom-client's labelled children hash their
 * label object on every `inc`; a cell costs one addition, and the counter reads the cells only
 * when scraped. Cells hold integers (tokens, nano-dollars), so sums are exact up to 2^53 per
 * series; `divisor` turns them into the exposed unit at scrape time.
 *
 * Callers keep the cells they get (one per label set): asking twice for the same labels makes
 * two series with the same labels, so look cells up in a cache of your own.
 */
export class Tally<L extends string> {
  private readonly cells: { readonly labels: Record<L, string>; readonly cell: Cell }[] = [];

  constructor(options: TallyOptions<L>) {
    const cells = this.cells;
    const divisor = options.divisor ?? 1;
    new Counter<L>({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      registers: [options.registry],
      collect() {
        this.reset();
        for (const { labels, cell } of cells) this.inc(labels, divisor === 1 ? cell.value : cell.value / divisor);
      },
    });
  }

  /** A new series with these labels, starting at 0 (exposed from the next scrape on). */
  cell(labels: Record<L, string>): Cell {
    const cell = { value: 0 };
    this.cells.push({ labels, cell });
    return cell;
  }
}
