// Every generated reference page, by its path in the repository.
import { renderAppReference } from './app-reference.js';
import { renderConfigReference } from './config-reference.js';

export async function generatedPages(): Promise<Record<string, string>> {
  const app = await renderAppReference();
  return {
    'docs/reference/configuration.md': renderConfigReference(),
    'docs/reference/metrics.md': app.metrics,
    'docs/reference/admin-api.md': app.adminApi,
    'docs/reference/admin-openapi.json': app.openApi,
  };
}
