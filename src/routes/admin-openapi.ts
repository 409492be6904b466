import { SCHEMA_NAME } from './admin-schemas.js';

/** One admin route as registered: what the OpenAPI document is built from. */
export interface DocumentedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: Record<string, unknown>;
}

type Json = Record<string, unknown>;

/** A JSON schema without tollgate's own bookkeeping property. */
function clean(schema: unknown): Json {
  const { [SCHEMA_NAME]: _name, ...rest } = schema as Json;
  return rest;
}

const STATUS_TEXT: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  400: 'Invalid input: the error names the field (`param`)',
  401: 'Missing or wrong admin token',
  404: 'No such key',
  409: 'Conflicts with the key’s state (id taken, key from the config file, key revoked)',
  429: 'Too many missing or wrong admin tokens (or client keys) from this address: try again after `retry-after` seconds',
  503: 'The key store (Redis) is unavailable: try again shortly',
};

/**
 * The OpenAPI 3.1 document of the admin API, built from the routes' own schemas (JSON Schema
 * 2020-12, which OpenAPI 3.1 uses as it is): what is documented is what is validated.
 */
export function openApiDocument(routes: readonly DocumentedRoute[]): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const { summary, params, querystring, body, response } = route.schema as {
      summary?: string;
      params?: Json;
      querystring?: Json;
      body?: Json;
      response?: Record<string, unknown>;
    };
    const parameters: Json[] = [];
    for (const [where, schema] of [['path', params], ['query', querystring]] as const) {
      if (!schema) continue;
      const properties = (schema.properties ?? {}) as Record<string, unknown>;
      const required = new Set((schema.required ?? []) as string[]);
      for (const [name, property] of Object.entries(properties)) {
        parameters.push({ name, in: where, required: where === 'path' || required.has(name), schema: property });
      }
    }
    const responses: Record<string, Json> = {};
    for (const [status, schema] of Object.entries(response ?? {})) {
      responses[status] = { description: STATUS_TEXT[status] ?? status, content: { 'application/json': { schema: clean(schema) } } };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      summary,
      ...(parameters.length > 0 && { parameters }),
      ...(body && { requestBody: { required: true, content: { 'application/json': { schema: clean(body) } } } }),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tollgate admin API',
      version: '1',
      description: 'Keys, their policies (limits, allowed models, budgets, token quotas, expiry) and their usage. Every route needs `Authorization: Bearer $TOLLGATE_ADMIN_TOKEN`. Errors use OpenAI’s envelope.',
    },
    servers: [{ url: '/' }],
    security: [{ adminToken: [] }],
    components: { securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'TOLLGATE_ADMIN_TOKEN' } } },
    paths,
  };
}
