import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.bench/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    // Layering: the modules below the request layer never reach up into routes/ or proxy/.
    files: ['src/{limits,usage,streaming,cache,steering,metrics,tokens,quota,batch,upstream,keys,auth,config,errors}/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/routes/*', '**/proxy/*'], message: 'Lower layers do not import from routes/ or proxy/.' }] },
      ],
    },
  },
  {
    files: ['bench/**', 'scripts/**', 'test/helpers/mock-upstream.ts'],
    rules: { 'no-console': 'off' },
  },
);
