import { createRequire } from 'node:module';
import path from 'node:path';
import { errors } from '../../shared/errors/app-error.js';
import type { OpenApiDocument } from '../http/openapi.js';
import { tableRoutes, type TableRoutes } from '../http/table-router.js';

/** Swagger UI's files that the page uses (and their source maps), served from node_modules. */
const SWAGGER_UI_FILES = new Set([
  'swagger-ui.css',
  'swagger-ui.css.map',
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'favicon-32x32.png',
  'favicon-16x16.png',
]);

const INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: false,
  validatorUrl: null,
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>queue-inference API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/docs-init.js"></script>
</body>
</html>
`;

// Everything the page loads comes from this origin: no CDN, works offline.
const PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/**
 * GET /openapi.json (public) and the interactive documentation at GET /docs: Swagger UI from the
 * swagger-ui-dist package, served by this process.
 */
export function docsRoutes(deps: { document: () => OpenApiDocument }): TableRoutes {
  const router = tableRoutes();
  const uiDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  let body: string | undefined;

  router.get('/openapi.json', (_req, res) => {
    body ??= JSON.stringify(deps.document());
    res.type('application/json').send(body);
  });

  router.get('/docs', (_req, res) => {
    res.setHeader('content-security-policy', PAGE_CSP);
    res.type('html').send(PAGE);
  });

  router.get('/docs/:asset', (req, res, next) => {
    const asset = req.params.asset as string;
    res.setHeader('cache-control', 'public, max-age=3600');
    if (asset === 'docs-init.js') return void res.type('application/javascript').send(INIT_SCRIPT);
    if (!SWAGGER_UI_FILES.has(asset)) return next(errors.notFound(`Unknown documentation asset '${asset}'.`, 'unknown_route'));
    res.sendFile(path.join(uiDir, asset), (err) => {
      if (err) next(errors.notFound(`Documentation asset '${asset}' is not installed.`, 'unknown_route'));
    });
  });

  return router;
}
