/** Which usage shape an endpoint reports (JSON body and stream). */
export type UsageShape = 'chat' | 'responses' | 'completions' | 'embeddings';
