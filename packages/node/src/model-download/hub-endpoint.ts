/** The Hugging Face hub; HF_ENDPOINT (the hub's own variable, read in the CLI's config) points elsewhere. */
export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";
