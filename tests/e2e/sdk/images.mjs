// OpenAI's image calls as OpenAI's image generation guide shows them, with the official Node SDK at
// its defaults; only the base URL and key point at imagejobs. Prints one JSON line per call.
//   node images.mjs generate PROMPT | edit PROMPT IMAGE.png
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ baseURL: process.env.IMAGEJOBS_BASE_URL + "/v1", apiKey: process.env.IMAGEJOBS_API_KEY });
const [call, prompt, ...files] = process.argv.slice(2);
const started = performance.now();
try {
  let result;
  if (call === "generate") {
    result = await client.images.generate({ model: "gpt-image-1", prompt, quality: "low" });
  } else {
    const image = await Promise.all(files.map((file) => toFile(fs.createReadStream(file), null, { type: "image/png" })));
    result = await client.images.edit({ model: "gpt-image-1", image, prompt });
  }
  const bytes = Buffer.from(result.data[0].b64_json, "base64"); // the user's next line, in OpenAI's guide
  const seconds = Math.round(performance.now() - started) / 1000;
  console.log(JSON.stringify({ images: result.data.length, png: bytes.subarray(1, 4).toString() === "PNG", seconds }));
} catch (error) {
  if (!(error instanceof OpenAI.APIError)) throw error;
  console.log(JSON.stringify({ error: error.constructor.name, status: error.status, message: error.message }));
}
