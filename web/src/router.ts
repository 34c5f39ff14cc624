// Routes. `/` and its children need a session; the guard asks `/api/me` once per page load.
import { createRouter, createWebHistory } from 'vue-router'
import MainLayout from './views/MainLayout.vue'
import EmptyPane from './views/EmptyPane.vue'
import { useSession } from './stores/session'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/AuthView.vue'), meta: { public: true } },
    {
      path: '/',
      component: MainLayout,
      children: [
        { path: '', name: 'home', component: EmptyPane },
        { path: 'chat/:id', name: 'chat', component: () => import('./views/ChatView.vue'), props: true },
        { path: 'contacts', name: 'contacts', component: () => import('./views/ContactsView.vue') },
        { path: 'saved', name: 'saved', component: () => import('./views/SavedView.vue') },
        { path: 'settings', name: 'settings', component: () => import('./views/SettingsView.vue') },
        // Shared links (QR codes): a profile, a group invite.
        { path: 'u/:username', name: 'user-link', component: () => import('./views/LinkView.vue'), props: true },
        { path: 'join/:token', name: 'group-link', component: () => import('./views/LinkView.vue'), props: true },
        {
          path: 'admin/:tab(dashboard|users|groups|stickers|settings|audit)?',
          name: 'admin',
          component: () => import('./views/AdminView.vue'),
          props: true,
          meta: { admin: true },
        },
      ],
    },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  const session = useSession()
  if (!session.checked) await session.fetchMe()
  if (to.meta.public) {
    return session.me ? { path: typeof to.query.next === 'string' && to.query.next.startsWith('/') ? to.query.next : '/' } : true
  }
  if (!session.me) return { name: 'login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  // The server checks every admin action too; this only keeps others out of empty screens.
  if (to.meta.admin && !session.me.is_admin) return { path: '/' }
  return true
})

// After an upgrade the old page may ask for a code chunk the new server no longer has: load the
// page again (once per route) instead of leaving the user on a dead screen.
router.onError((err: unknown, to) => {
  const msg = err instanceof Error ? err.message : String(err)
  if (!/dynamically imported module|Importing a module script failed|Failed to fetch/i.test(msg)) return
  const key = `chinwag:reloaded:${to.fullPath}`
  if (sessionStorage.getItem(key)) return
  sessionStorage.setItem(key, '1')
  window.location.assign(to.fullPath)
})
