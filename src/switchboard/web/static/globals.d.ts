// What the call page (app.js) exposes on window, for scripts and tests.
interface Window {
  switchboardPage: {
    client: import("./client.js").VideoClient | null;
    sdk: typeof import("./switchboard.js");
    joinCall: (type: string, id: string, camera: boolean) => Promise<void>;
  };
}
