/**
 * The rotating pool canary jobs draw from: short instructions over everyday topics, so a canary reads like any
 * user's request. Built from templates × topics (hundreds of prompts), drawn at random each time.
 */
const TEMPLATES = [
  "Write two sentences about {topic}.",
  "Explain {topic} to a ten-year-old.",
  "List three facts about {topic}.",
  "What should a beginner know about {topic}?",
  "Give me a short summary of {topic}.",
  "Describe {topic} in one paragraph.",
  "Why do people care about {topic}?",
  "Write a haiku about {topic}.",
];

const TOPICS = [
  "rivers", "bread baking", "the moon", "bicycles", "honey bees", "volcanoes", "chess openings", "rainforests",
  "solar panels", "jazz", "the printing press", "octopuses", "compound interest", "glaciers", "tea", "lighthouses",
  "sourdough", "electric cars", "the Roman roads", "migratory birds", "coral reefs", "origami", "thunderstorms",
  "maps", "recycling", "violins", "deserts", "the immune system", "bridges", "mushrooms", "wind turbines",
  "ancient Egypt", "coffee", "photosynthesis", "marathons", "libraries", "earthquakes", "whales", "clocks",
  "gardening", "the internet", "penguins", "pottery", "satellites", "cheese", "mountains", "trains", "sleep",
];

export const CANARY_PROMPT_COUNT = TEMPLATES.length * TOPICS.length;

/** The prompt at `index` (taken modulo the pool's size). */
export function canaryPrompt(index: number): string {
  const i = ((Math.floor(index) % CANARY_PROMPT_COUNT) + CANARY_PROMPT_COUNT) % CANARY_PROMPT_COUNT;
  return TEMPLATES[i % TEMPLATES.length]!.replace("{topic}", TOPICS[Math.floor(i / TEMPLATES.length)]!);
}
