// Files dragged over an element: shows a drop target while files (not text or links) are over
// it, and hands the dropped files on. Dragging over children fires enter/leave pairs, so depth is
// counted.
import { ref } from 'vue'

export function useFileDrop(accepts: () => boolean, onFiles: (files: File[]) => void) {
  const dragging = ref(false)
  let depth = 0

  function onDragEnter(e: DragEvent) {
    if (!accepts() || !e.dataTransfer?.types.includes('Files')) return
    e.preventDefault()
    depth++
    dragging.value = true
  }

  function onDragOver(e: DragEvent) {
    if (dragging.value) e.preventDefault()
  }

  function onDragLeave() {
    if (--depth <= 0) {
      depth = 0
      dragging.value = false
    }
  }

  function onDrop(e: DragEvent) {
    depth = 0
    dragging.value = false
    const files = [...(e.dataTransfer?.files ?? [])]
    if (!files.length) return
    e.preventDefault()
    onFiles(files)
  }

  return { dragging, onDragEnter, onDragOver, onDragLeave, onDrop }
}
