// The app reads its secrets from process.env like any twelve-factor app;
// secretrun put them there, and nothing was written to a .env file.
const http = require("http");

for (const name of ["STRIPE_KEY", "DATABASE_URL"]) {
  if (!process.env[name]) {
    console.error(`missing ${name}: start me with secretrun -- npm start`);
    process.exit(1);
  }
}

const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => {
    // Never echo a secret; say only that it is there.
    res.end(`stripe key configured (${process.env.STRIPE_KEY.length} chars)\n`);
  })
  .listen(port, () => console.log(`listening on :${port}`));

// secretrun forwards SIGTERM (and restarts the app on rotation with --watch).
process.on("SIGTERM", () => process.exit(0));
