// Starts `ztp lsp` for .ztp files; everything else comes from the server.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("ztp").get("server.path") || "ztp";
  const serverOptions = { command, args: ["lsp"] };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "ztp" }],
    // The server re-checks open programs when .ztp files change on disk.
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.ztp") },
  };
  client = new LanguageClient("ztp", "ztp", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("ztp.restartServer", () => client.restart()),
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
