// One admin list's state for `components/admin/PagedList.vue`: the paging of `lib/paging.ts`
// made reactive, the search box (a typed search starts again at page one, once typing pauses),
// and the success line of the list's actions. It loads page one when the component mounts.
import { onMounted, reactive } from 'vue'
import { useI18n } from 'vue-i18n'
import { watchDebounced } from '@vueuse/core'
import { errorText } from '@/lib/errors'
import { begin, fail, pageState, settle, type PageAnswer, type PageMode, type PageQuery, type PageState, type PageStep } from '@/lib/paging'

export interface PagedList<T> extends PageState<T> {
  /** The search box's text (lists with a search). */
  search: string
  /** The last action's success line. */
  notice: string
  go(step: PageStep): Promise<void>
}

/** `fetch` gets the query with the trimmed search text. */
export function usePagedList<T>(
  fetch: (q: PageQuery<T> & { search: string }) => Promise<PageAnswer<T>>,
  opts: { limit: number; mode?: PageMode; search?: boolean },
): PagedList<T> {
  const { t } = useI18n()
  const list = reactive({
    ...pageState<T>(opts.mode ?? 'pages', opts.limit),
    search: '',
    notice: '',
    async go(step: PageStep) {
      const q = begin(list, step)
      try {
        settle(list, q, await fetch({ ...q, search: list.search.trim() }))
      } catch (e) {
        fail(list, q, errorText(t, e))
      }
    },
  }) as PagedList<T>
  onMounted(() => void list.go('first'))
  if (opts.search) watchDebounced(() => list.search, () => void list.go('first'), { debounce: 300 })
  return list
}
