// The emoji picker's grid: common Unicode emoji by category (no library, no images).

export interface EmojiGroup {
  /** i18n key under `emoji.` */
  id: 'smileys' | 'gestures' | 'hearts' | 'animals' | 'food' | 'activities' | 'objects'
  icon: string
  list: string[]
}

const split = (s: string) => s.trim().split(/\s+/)

export const emojiGroups: EmojiGroup[] = [
  {
    id: 'smileys',
    icon: '😀',
    list: split(`😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😗 😚 😋 😛 😜 🤪 😝 🤑 🤗 🤭 🤫 🤔 🤐 🤨 😐 😑 😶 😏 😒 🙄 😬 😌 😔 😪 🤤 😴 😷 🤒 🤕 🤢 🤮 🥵 🥶 🥴 😵 🤯 🤠 🥳 😎 🤓 🧐 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 💀 💩 🤡 👻 👽 🤖`),
  },
  {
    id: 'gestures',
    icon: '👍',
    list: split(`👍 👎 👌 🤌 ✌️ 🤞 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ ✋ 🤚 🖐️ 🖖 👋 🤝 👏 🙌 👐 🤲 🙏 ✍️ 💪 🫶 🫡 🤷 🤦 🙋 🙇 💁 🙆 🙅`),
  },
  {
    id: 'hearts',
    icon: '❤️',
    list: split(`❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❣️ 💕 💞 💓 💗 💖 💘 💝 💯 💢 💥 💫 💦 💨 🔥 ✨ ⭐ 🌟 ⚡ 🎉 🎊`),
  },
  {
    id: 'animals',
    icon: '🐱',
    list: split(`🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🙈 🙉 🙊 🐔 🐧 🐦 🐤 🦆 🦉 🐺 🐴 🦄 🐝 🦋 🐌 🐞 🐢 🐍 🐙 🐠 🐬 🐳 🌸 🌹 🌻 🌲 🍀 🍁`),
  },
  {
    id: 'food',
    icon: '🍜',
    list: split(`🍎 🍊 🍋 🍌 🍉 🍇 🍓 🍒 🍑 🥭 🍍 🥝 🍅 🥑 🌶️ 🌽 🥕 🍞 🧀 🍳 🍔 🍟 🍕 🌭 🥪 🌮 🍜 🍲 🍛 🍣 🍱 🥟 🍚 🍙 🍘 🍡 🍦 🍰 🎂 🍫 🍬 🍩 🍪 ☕ 🍵 🧋 🍺 🍻 🥂 🍷`),
  },
  {
    id: 'activities',
    icon: '⚽',
    list: split(`⚽ 🏀 🏈 ⚾ 🎾 🏐 🏓 🏸 🥊 🎯 🎳 🎮 🎲 🧩 🎨 🎬 🎤 🎧 🎸 🎹 🥁 🏆 🥇 🚗 🚕 🚌 🚲 ✈️ 🚀 🏠 🏖️ ⛰️ 🌈 ☀️ 🌙 ☁️ ☔ ❄️ ⛄`),
  },
  {
    id: 'objects',
    icon: '💡',
    list: split(`💡 📱 💻 ⌨️ 🖥️ 📷 📺 ⏰ ⌛ 💰 💳 💎 🔑 🔒 🔔 📌 📎 ✏️ 📝 📚 📦 📮 ✉️ 🎁 🎈 🧧 🏮 🧸 🛒 ✅ ❌ ❓ ❗ ⚠️ 🆗 🆒 🆕 🔝`),
  },
]
