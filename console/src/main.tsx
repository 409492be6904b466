import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf, whenSignedOut } from './api.js';
import { CachePage } from './pages/cache.js';
import { CreatePage } from './pages/create.js';
import { KeyDetailPage } from './pages/key-detail.js';
import { KeysPage } from './pages/keys.js';
import { MePage } from './pages/me.js';
import { OverviewPage } from './pages/overview.js';
import { SignIn } from './pages/sign-in.js';
import type { SessionInfo } from './types.js';
import { ErrorBox, Loading } from './ui.js';

/** Hash routes: the server serves one page; `#/keys/app-1` etc. */
function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return hash.replace(/^#/, '') || '/';
}

function AdminPage({ route }: { route: string }) {
  const detail = /^\/keys\/(.+)$/.exec(route);
  if (detail?.[1]) return <KeyDetailPage id={decodeURIComponent(detail[1])} />;
  if (route === '/keys') return <KeysPage />;
  if (route === '/create') return <CreatePage />;
  if (route === '/cache') return <CachePage />;
  return <OverviewPage />;
}

const ADMIN_LINKS = [
  ['/', 'Overview'],
  ['/keys', 'Keys'],
  ['/create', 'Create a key'],
  ['/cache', 'Cache'],
] as const;

function App() {
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [failed, setFailed] = useState<Error | null>(null);
  const route = useHash();
  const refresh = () =>
    api<SessionInfo>('GET', 'session').then(
      (s) => {
        setCsrf(s.csrf_token);
        setSession(s);
        setFailed(null);
      },
      (err: Error) => setFailed(err),
    );
  useEffect(() => {
    whenSignedOut(() => void refresh());
    void refresh();
  }, []);
  // Move focus to the page's heading on navigation, so keyboard and screen reader users follow.
  useEffect(() => document.querySelector<HTMLElement>('main h1')?.focus(), [route, session?.role]);

  if (failed) return <main id="main"><ErrorBox error={failed} retry={refresh} /></main>;
  if (!session) return <main id="main"><Loading what="the console" /></main>;
  if (!session.signed_in) return <SignIn ways={session.sign_in_with ?? []} onSignedIn={setSession} />;
  const signOut = async () => {
    await api('DELETE', 'session').catch(() => undefined);
    setCsrf(null);
    location.hash = '#/';
    await refresh();
  };
  const links = session.role === 'admin' ? ADMIN_LINKS : ([['/', 'My key']] as const);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to the content
      </a>
      <header>
        <span class="brand">tollgate</span>
        <nav aria-label="Console">
          <ul>
            {links.map(([href, label]) => (
              <li key={href}>
                <a href={`#${href}`} aria-current={route === href ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">{session.role === 'admin' ? 'admin' : session.key_id}</span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {session.role === 'admin' ? <AdminPage route={route} /> : <MePage />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
