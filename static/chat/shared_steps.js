// The steps of the tools the API runs (server tools, MCP servers) and the memory tool's words, for a shared
// conversation's page: shared.js is a classic script, so this module hands it the chat page's own step renderers
// as one global, `ChatSteps`. Loaded as a module before shared.js; both are deferred, so it runs first.
import { mcpResult, mcpStepBlock } from "./steps_mcp.js";
import { memoryStepRelabel } from "./steps_memory.js";
import { isServerResult, sharedServerStep } from "./steps_server.js";

window.ChatSteps = { isServerResult, sharedServerStep, mcpResult, mcpStepBlock, memoryStepRelabel };
